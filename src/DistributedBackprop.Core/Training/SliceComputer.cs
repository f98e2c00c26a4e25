using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Kernels;
using DistributedBackprop.Core.Layers;
using DistributedBackprop.Core.Model;

namespace DistributedBackprop.Core.Training;

/// <summary>
/// Runs backpropagation over one slice of samples and writes the slice's SUMS into a result vector laid out as
/// <see cref="Network.ResultLength"/> describes. The chain rule, from the error backwards: the loss turns "how the output
/// should move" into dE/dy; each layer turns its dE/dy into nudges for its own parameters and dE/dx for the layer before.
/// </summary>
public static class SliceComputer
{
    public static void Compute(Network network, ModelWeights weights, Dataset data, ReadOnlySpan<int> sampleIndices,
        ulong seed, long step, Workspace workspace, Span<float> result) =>
        Compute(network, weights, data, sampleIndices, seed, step, workspace, result, []);

    /// <summary>
    /// As above, and the result is add[K-1] + (… + (add[0] + the slice's sums)): the pending sums of the canonical tree
    /// that this slice completes (see <see cref="GradientTreeReducer.PendingAddends"/>), added where each part of the
    /// result is written, so a worker's tree costs no separate pass over the weight gradients.
    /// </summary>
    public static void Compute(Network network, ModelWeights weights, Dataset data, ReadOnlySpan<int> sampleIndices,
        ulong seed, long step, Workspace workspace, Span<float> result, ReadOnlySpan<float[]> addends)
    {
        var rows = sampleIndices.Length;
        if (rows > workspace.MaxRows)
        {
            throw new ArgumentException($"Slice of {rows} rows exceeds the workspace's {workspace.MaxRows}.");
        }
        if (result.Length < network.ResultLength)
        {
            throw new ArgumentException($"Result span of {result.Length} is shorter than {network.ResultLength}.");
        }
        Gather(data, sampleIndices, workspace);
        Forward(network, weights, rows, training: true, seed, step, sampleIndices, workspace, result);

        var outputs = workspace.Activations[^1].AsSpan(0, rows * network.OutputSize);
        var dOut = workspace.GradientA.AsSpan(0, rows * network.OutputSize);
        var (lossSum, correct) = network.Loss.Evaluate(outputs, workspace.Labels.AsSpan(0, rows), dOut, rows,
            network.OutputSize);
        result[network.LossSumIndex] = (float)lossSum;
        result[network.CorrectIndex] = correct;

        var dCurrent = workspace.GradientA;
        var dPrevious = workspace.GradientB;
        var parameters = weights.Parameters.AsSpan();
        var buffers = weights.Buffers.AsSpan();
        for (var l = network.Layers.Count - 1; l >= 0; l--)
        {
            var layer = network.Layers[l];
            var pass = new LayerPass
            {
                Rows = rows,
                Training = true,
                Parameters = network.LayerParameters(parameters, l),
                Buffers = network.LayerBuffers(buffers, l),
                Gradients = result[network.ParameterOffsets[l]..network.ParameterOffsets[l + 1]],
                Addends = addends,
                GradientOffset = network.ParameterOffsets[l],
                Input = workspace.Activations[l].AsSpan(0, rows * layer.InputSize),
                Output = workspace.Activations[l + 1].AsSpan(0, rows * layer.OutputSize),
                OutputGradient = dCurrent.AsSpan(0, rows * layer.OutputSize),
                InputGradient = l == 0 ? Span<float>.Empty : dPrevious.AsSpan(0, rows * layer.InputSize),
                Scratch = workspace.Scratch[l],
                Prepared = workspace.Prepared?[l],
                Seed = seed,
                Step = step,
                SampleIndices = sampleIndices,
                LayerIndex = l,
            };
            layer.Backward(ref pass);
            if (!layer.AddsAddends)
            {
                Elementwise.AddAddends(pass.Gradients, addends, network.ParameterOffsets[l]);
            }
            (dCurrent, dPrevious) = (dPrevious, dCurrent);
        }
        // The statistics, the loss sum and the correct count.
        Elementwise.AddAddends(result[network.ParameterCount..network.ResultLength], addends, network.ParameterCount);
    }

    /// <summary>Inference-mode outputs for the given rows (no dropout, batch norm on running statistics).</summary>
    public static ReadOnlySpan<float> Predict(Network network, ModelWeights weights, Dataset data,
        ReadOnlySpan<int> sampleIndices, Workspace workspace)
    {
        Gather(data, sampleIndices, workspace);
        Forward(network, weights, sampleIndices.Length, training: false, 0, 0, sampleIndices, workspace, Span<float>.Empty);
        return workspace.Activations[^1].AsSpan(0, sampleIndices.Length * network.OutputSize);
    }

    private static void Gather(Dataset data, ReadOnlySpan<int> sampleIndices, Workspace workspace)
    {
        var features = data.FeatureCount;
        var input = workspace.Activations[0];
        for (var i = 0; i < sampleIndices.Length; i++)
        {
            data.Row(sampleIndices[i]).CopyTo(input.AsSpan(i * features, features));
            workspace.Labels[i] = data.Labels[sampleIndices[i]];
        }
    }

    private static void Forward(Network network, ModelWeights weights, int rows, bool training, ulong seed, long step,
        ReadOnlySpan<int> sampleIndices, Workspace workspace, Span<float> result)
    {
        var parameters = weights.Parameters.AsSpan();
        var buffers = weights.Buffers.AsSpan();
        var statisticsBase = network.ParameterCount;
        for (var l = 0; l < network.Layers.Count; l++)
        {
            var layer = network.Layers[l];
            var pass = new LayerPass
            {
                Rows = rows,
                Training = training,
                Parameters = network.LayerParameters(parameters, l),
                Buffers = network.LayerBuffers(buffers, l),
                Statistics = training
                    ? result[(statisticsBase + network.StatisticsOffsets[l])..(statisticsBase + network.StatisticsOffsets[l + 1])]
                    : Span<float>.Empty,
                Input = workspace.Activations[l].AsSpan(0, rows * layer.InputSize),
                Output = workspace.Activations[l + 1].AsSpan(0, rows * layer.OutputSize),
                Scratch = workspace.Scratch[l],
                Seed = seed,
                Step = step,
                SampleIndices = sampleIndices,
                LayerIndex = l,
            };
            layer.Forward(ref pass);
        }
    }
}
