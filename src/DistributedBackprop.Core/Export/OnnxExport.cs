using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Layers;
using DistributedBackprop.Core.Model;

namespace DistributedBackprop.Core.Export;

/// <summary>
/// A trained distbp model as a standard ONNX graph (opset 13) that any ONNX runtime can serve.
/// Input <c>input</c>: float [batch, features], raw features as in the data files; the graph normalises them.
/// Outputs: <c>probabilities</c> (softmax, cross-entropy models) or <c>output</c> (the raw network output, MSE models),
/// float [batch, classes]; and <c>class</c>, int64 [batch], the index of the largest output (the first on a tie).
/// Every step repeats distbp's own arithmetic in its order, so the graph computes what <c>distbp predict</c> does:
/// normalisation and batch norm are Sub and Div as distbp does them (not a multiplication by a reciprocal, nor
/// ONNX BatchNormalization, which folds the scale and shift and so rounds differently); a dense layer is MatMul then
/// Add (the product is rounded before the bias is added, as in distbp); dropout is left out (inverted dropout needs no
/// change at inference).
/// </summary>
public static class OnnxExport
{
    public const string InputName = "input";
    public const string ProbabilitiesName = "probabilities";
    public const string RawOutputName = "output";
    public const string ClassName = "class";
    private const string Batch = "batch";

    /// <summary>The ONNX model file's bytes; the command writes them atomically.</summary>
    public static byte[] Serialize(ModelSnapshot snapshot)
    {
        var network = new Network(snapshot.Header.Spec);
        var parameters = snapshot.Weights.Parameters.AsSpan();
        var buffers = snapshot.Weights.Buffers.AsSpan();
        var features = network.InputSize;
        var classes = network.OutputSize;
        var graph = new OnnxGraph("distbp");

        var x = graph.Input(InputName, Batch, features, "raw features, one row per sample, as in the training data");
        x = graph.Node("Sub", "normaliser.centred",
            [x, graph.Constant("normaliser.mean", snapshot.Normaliser.Mean, features)]);
        x = graph.Node("Div", "normaliser.output",
            [x, graph.Constant("normaliser.std", snapshot.Normaliser.Std, features)]);

        for (var l = 0; l < network.Layers.Count; l++)
        {
            var layer = network.Layers[l];
            var prefix = $"layer{l}.{layer.Kind}";
            var p = network.LayerParameters(parameters, l);
            var b = network.LayerBuffers(buffers, l);
            x = layer switch
            {
                Dense => DenseLayer(graph, prefix, x, p, layer.InputSize, layer.OutputSize),
                BatchNorm => BatchNormInference(graph, prefix, x, p, b, layer.OutputSize),
                Relu => graph.Node("Relu", prefix, [x]),
                LeakyRelu leaky => graph.Node("LeakyRelu", prefix, [x], OnnxGraph.Attribute.Of("alpha", leaky.Slope)),
                Sigmoid => graph.Node("Sigmoid", prefix, [x]),
                Tanh => graph.Node("Tanh", prefix, [x]),
                Dropout => x,
                _ => throw new InvalidOperationException($"No ONNX form for the layer kind '{layer.Kind}'."),
            };
        }

        // Softmax over the classes, as distbp's cross-entropy turns outputs into probabilities.
        var crossEntropy = network.Spec.Loss == "cross-entropy";
        var outputName = crossEntropy ? ProbabilitiesName : RawOutputName;
        if (crossEntropy)
        {
            graph.Node("Softmax", outputName, [x], OnnxGraph.Attribute.Of("axis", 1L));
        }
        else
        {
            graph.Node("Identity", outputName, [x]);
        }
        graph.Output(outputName, OnnxGraph.ElementType.Float, Batch, classes,
            crossEntropy ? "class probabilities (softmax)" : "raw network output, one value per class");
        // The argmax of the network output itself, as distbp picks its class (a tie goes to the first index).
        graph.Node("ArgMax", ClassName, [x], OnnxGraph.Attribute.Of("axis", 1L), OnnxGraph.Attribute.Of("keepdims", 0L));
        graph.Output(ClassName, OnnxGraph.ElementType.Int64, Batch, null, "predicted class index");

        var spec = network.Spec;
        return graph.ToModel("distbp",
            $"distbp network {spec.WidthsText}, {spec.Activation}, {spec.Loss}{(spec.BatchNorm ? ", batch norm" : "")}",
            new Dictionary<string, string>
            {
                ["distbp.layers"] = spec.WidthsText,
                ["distbp.activation"] = spec.Activation,
                ["distbp.loss"] = spec.Loss,
                ["distbp.batch_norm"] = spec.BatchNorm ? "true" : "false",
                ["distbp.weights_sha256"] = snapshot.Weights.Sha256(),
            });
    }

    /// <summary>Y = X·W + b: the product, then the bias.</summary>
    private static string DenseLayer(OnnxGraph graph, string prefix, string x, ReadOnlySpan<float> parameters,
        int inputs, int outputs)
    {
        var weight = graph.Constant($"{prefix}.weight", parameters[..(inputs * outputs)], inputs, outputs);
        x = graph.Node("MatMul", $"{prefix}.product", [x, weight]);
        return graph.Node("Add", prefix, [x, graph.Constant($"{prefix}.bias", parameters[(inputs * outputs)..], outputs)]);
    }

    /// <summary>y = γ · (x − running mean) / sqrt(running variance + ε) + β, operation by operation as BatchNorm does it.</summary>
    private static string BatchNormInference(OnnxGraph graph, string prefix, string x, ReadOnlySpan<float> parameters,
        ReadOnlySpan<float> buffers, int n)
    {
        var mean = buffers[..n];
        var variance = buffers[n..];
        var std = new float[n];
        for (var j = 0; j < n; j++)
        {
            std[j] = MathF.Sqrt(variance[j] + BatchNorm.Epsilon);
        }
        x = graph.Node("Sub", $"{prefix}.centred", [x, graph.Constant($"{prefix}.running_mean", mean, n)]);
        x = graph.Node("Div", $"{prefix}.normalised", [x, graph.Constant($"{prefix}.running_std", std, n)]);
        x = graph.Node("Mul", $"{prefix}.scaled", [x, graph.Constant($"{prefix}.gamma", parameters[..n], n)]);
        return graph.Node("Add", prefix, [x, graph.Constant($"{prefix}.beta", parameters[n..], n)]);
    }
}
