using DistributedBackprop.Core;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Export;
using DistributedBackprop.Node.Cli;

namespace DistributedBackprop.Node.Commands;

/// <summary><c>distbp export --model FILE --onnx OUT.onnx</c>: a saved model as an ONNX graph, normalisation included.</summary>
public static class ExportCommand
{
    public const string Help = """
        usage: distbp export --model FILE --onnx OUT.onnx
        Writes the model (or checkpoint) as an ONNX graph (opset 13) with its feature normalisation built in.
        Input 'input': float [batch, features], raw features as in the training data.
        Outputs 'probabilities' (cross-entropy models: softmax) or 'output' (mse models: the raw network output),
        float [batch, classes]; and 'class', int64 [batch], the predicted class.
        """;

    public static int Run(IReadOnlyList<string> argv)
    {
        var args = ParsedArguments.Parse("export", argv, new HashSet<string> { "model", "onnx" }, new HashSet<string> { "help" });
        if (args.Flag("help"))
        {
            Console.WriteLine(Help);
            return 0;
        }
        var modelPath = args.String("model") ?? throw new DistbpInputException("export: --model FILE is required.");
        var onnxPath = args.String("onnx") ?? throw new DistbpInputException("export: --onnx OUT.onnx is required (where to write the ONNX model).");
        AtomicFile.CheckWritable(onnxPath, "onnx");
        var snapshot = ModelFile.Read(modelPath, "--model");
        AtomicFile.Write(onnxPath, "onnx", OnnxExport.Serialize(snapshot));
        var spec = snapshot.Header.Spec;
        var output = spec.Loss == "cross-entropy" ? OnnxExport.ProbabilitiesName : OnnxExport.RawOutputName;
        Console.WriteLine($"exported {modelPath} ({spec.WidthsText} {spec.Activation}, {spec.Loss}) to {onnxPath}");
        Console.WriteLine($"input '{OnnxExport.InputName}' [batch, {spec.Widths[0]}]; outputs '{output}' [batch, {spec.Widths[^1]}], '{OnnxExport.ClassName}' [batch]");
        return 0;
    }
}
