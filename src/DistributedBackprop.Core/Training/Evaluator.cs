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
        var chunks = ChunkCount(data.Count);
        var lossSums = new double[chunks];
        var correct = new int[chunks];
        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) };
        Parallel.For(0, chunks, options, () => new Workspace(network, ChunkRows), (c, _, workspace) =>
        {
            (lossSums[c], correct[c]) = EvaluateChunk(network, weights, data, c, workspace);
            return workspace;
        }, _ => { });
        return Combine(lossSums, correct, data.Count);
    }

    public static int ChunkCount(int rows) => (rows + ChunkRows - 1) / ChunkRows;

    /// <summary>Loss sum and correct count of chunk <paramref name="chunk"/> (rows chunk·256 onwards).</summary>
    public static (double LossSum, int Correct) EvaluateChunk(Network network, ModelWeights weights, Dataset data,
        int chunk, Workspace workspace)
    {
        var (first, rows) = ChunkRange(data, chunk);
        var outputs = ChunkOutputs(network, weights, data, chunk, workspace);
        return network.Loss.Evaluate(outputs, data.Labels.AsSpan(first, rows), Span<float>.Empty, rows,
            network.OutputSize);
    }

    /// <summary>
    /// The network's inference outputs for every row, rows × classes in row order. Each row's outputs depend on that
    /// row alone, so the chunking and the thread count never change them.
    /// </summary>
    public static float[] Outputs(Network network, ModelWeights weights, Dataset data, int threads)
    {
        var classes = network.OutputSize;
        var all = new float[data.Count * classes];
        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) };
        Parallel.For(0, ChunkCount(data.Count), options, () => new Workspace(network, ChunkRows), (c, _, workspace) =>
        {
            var outputs = ChunkOutputs(network, weights, data, c, workspace);
            outputs.CopyTo(all.AsSpan(c * ChunkRows * classes));
            return workspace;
        }, _ => { });
        return all;
    }

    private static (int First, int Rows) ChunkRange(Dataset data, int chunk)
    {
        var first = chunk * ChunkRows;
        return (first, Math.Min(ChunkRows, data.Count - first));
    }

    private static ReadOnlySpan<float> ChunkOutputs(Network network, ModelWeights weights, Dataset data, int chunk,
        Workspace workspace)
    {
        var (first, rows) = ChunkRange(data, chunk);
        var indices = workspace.Indices.AsSpan(0, rows);
        for (var i = 0; i < rows; i++)
        {
            indices[i] = first + i;
        }
        return SliceComputer.Predict(network, weights, data, indices, workspace);
    }

    /// <summary>Chunk sums combined in chunk order: the figures do not depend on who evaluated which chunk.</summary>
    public static Evaluation Combine(IReadOnlyList<double> lossSums, IReadOnlyList<int> correct, int count)
    {
        var loss = 0.0;
        var right = 0L;
        for (var c = 0; c < lossSums.Count; c++)
        {
            loss += lossSums[c];
            right += correct[c];
        }
        return new Evaluation(loss / count, right / (double)count, count);
    }
}
