using DistributedBackprop.Core.Data;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// The distributed feature statistics: the training data in chunks of <see cref="ChunkRows"/> rows, each chunk's
/// statistics taken once whoever computed it, checked against the chunk's shape, and merged in chunk order into the
/// normaliser — the same as the single-process trainer's, whichever workers computed what.
/// </summary>
public sealed class StatisticsRound(Dataset train)
{
    public int ChunkRows { get; } = FeatureStatistics.DefaultChunkRows;

    private readonly ChunkResults<FeatureStatistics> _chunks =
        new((train.Count + FeatureStatistics.DefaultChunkRows - 1) / FeatureStatistics.DefaultChunkRows);

    /// <summary>The chunks still awaited (what a re-send asks for).</summary>
    public List<int> Missing => _chunks.Missing;

    /// <summary>A chunk in range that has not arrived yet.</summary>
    public bool IsAwaited(int chunk) => _chunks.IsAwaited(chunk);

    /// <summary>True when <paramref name="count"/> rows and the moments' lengths are those of <paramref name="chunk"/>.</summary>
    public bool HasShape(int chunk, long count, int meanLength, int m2Length) =>
        count == Math.Min(ChunkRows, train.Count - (long)chunk * ChunkRows)
        && meanLength == train.FeatureCount && m2Length == train.FeatureCount;

    /// <summary>Takes an awaited chunk of the right shape; the normaliser once it was the last.</summary>
    public FeatureNormaliser? Add(int chunk, FeatureStatistics statistics) =>
        _chunks.Add(chunk, statistics)
            ? FeatureNormaliser.FromStatistics(FeatureStatistics.MergeInOrder(train.FeatureCount, _chunks.Values))
            : null;
}
