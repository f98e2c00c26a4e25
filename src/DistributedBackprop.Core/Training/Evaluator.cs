using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Model;

namespace DistributedBackprop.Core.Training;

public readonly record struct Evaluation(double Loss, double Accuracy, int Count);

/// <summary>
/// Inference over a whole data set: fixed chunks of rows, evaluated in parallel, their sums combined in chunk order —
/// the same figures whatever the thread count.
/// </summary>
public static class Evaluator
{
    public const int ChunkRows = 256;

    public static Evaluation Evaluate(Network network, ModelWeights weights, Dataset data, int threads)
    {
        var chunks = (data.Count + ChunkRows - 1) / ChunkRows;
        var lossSums = new double[chunks];
        var correct = new int[chunks];
        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) };
        Parallel.For(0, chunks, options, () => new Workspace(network, ChunkRows), (c, _, workspace) =>
        {
            var first = c * ChunkRows;
            var rows = Math.Min(ChunkRows, data.Count - first);
            var indices = workspace.Indices.AsSpan(0, rows);
            for (var i = 0; i < rows; i++)
            {
                indices[i] = first + i;
            }
            var outputs = SliceComputer.Predict(network, weights, data, indices, workspace);
            (lossSums[c], correct[c]) = network.Loss.Evaluate(outputs, data.Labels.AsSpan(first, rows), Span<float>.Empty,
                rows, network.OutputSize);
            return workspace;
        }, _ => { });
        var loss = 0.0;
        var right = 0L;
        for (var c = 0; c < chunks; c++)
        {
            loss += lossSums[c];
            right += correct[c];
        }
        return new Evaluation(loss / data.Count, right / (double)data.Count, data.Count);
    }
}
