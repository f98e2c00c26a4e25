using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// One distributed evaluation of the held-out split with weights version <see cref="Version"/>: each chunk's loss sum
/// and correct count taken once whoever computed it, combined in chunk order (<see cref="Evaluator.Combine"/>) — the
/// single-process figures, whichever workers computed what.
/// </summary>
public sealed class EvaluationRound(int testCount, long version, int epoch)
{
    private readonly ChunkResults<(double LossSum, int Correct)> _chunks = new(Evaluator.ChunkCount(testCount));

    public long Version => version;

    /// <summary>The epoch whose end is evaluated.</summary>
    public int Epoch => epoch;

    /// <summary>The chunks still awaited (what a re-send asks for).</summary>
    public List<int> Missing => _chunks.Missing;

    /// <summary>A result of this version for a chunk that has not arrived yet.</summary>
    public bool IsAwaited(long resultVersion, int chunk) => resultVersion == version && _chunks.IsAwaited(chunk);

    /// <summary>Takes an awaited chunk; the evaluation once it was the last.</summary>
    public Evaluation? Add(int chunk, double lossSum, int correct) =>
        _chunks.Add(chunk, (lossSum, correct))
            ? Evaluator.Combine(_chunks.Values.Select(c => c.LossSum).ToList(), _chunks.Values.Select(c => c.Correct).ToList(), testCount)
            : null;
}
