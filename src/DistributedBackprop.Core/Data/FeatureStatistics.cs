namespace DistributedBackprop.Core.Data;

/// <summary>
/// Per-feature count, mean and M2 (sum of squared deviations from the mean), in double, over some rows.
/// Partials merge exactly as Chan et al.'s parallel variance formula, so workers can compute them over their rows and a
/// coordinator can merge them; <see cref="Compute"/> fixes the canonical chunking and merge order.
/// </summary>
public sealed class FeatureStatistics
{
    public const int DefaultChunkRows = 4096;

    public FeatureStatistics(long count, double[] mean, double[] m2)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (mean.Length != m2.Length)
        {
            throw new ArgumentException($"Mean has {mean.Length} features but M2 has {m2.Length}.");
        }
        Count = count;
        Mean = mean;
        M2 = m2;
    }

    public long Count { get; }
    public double[] Mean { get; }
    public double[] M2 { get; }
    public int FeatureCount => Mean.Length;

    /// <summary>Population variance M2 / Count of feature <paramref name="feature"/> (0 when there are no rows).</summary>
    public double Variance(int feature) => Count == 0 ? 0 : M2[feature] / Count;

    public static FeatureStatistics Empty(int featureCount) => new(0, new double[featureCount], new double[featureCount]);

    /// <summary>Statistics of rows start..start+count-1, two-pass (mean, then squared deviations), rows in order.</summary>
    public static FeatureStatistics Of(Dataset data, int start, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start, data.Count - count);
        var features = data.FeatureCount;
        var mean = new double[features];
        var m2 = new double[features];
        if (count == 0)
        {
            return new FeatureStatistics(0, mean, m2);
        }

        for (var r = start; r < start + count; r++)
        {
            var row = data.Row(r);
            for (var j = 0; j < features; j++)
            {
                mean[j] += row[j];
            }
        }
        for (var j = 0; j < features; j++)
        {
            mean[j] /= count;
        }
        for (var r = start; r < start + count; r++)
        {
            var row = data.Row(r);
            for (var j = 0; j < features; j++)
            {
                var d = row[j] - mean[j];
                m2[j] += d * d;
            }
        }
        return new FeatureStatistics(count, mean, m2);
    }

    /// <summary>
    /// The statistics of both row sets together (Chan, Golub, LeVeque 1979); neither input changes.
    /// Floating-point merging is not associative, so callers that need identical bits merge in one fixed order.
    /// </summary>
    public FeatureStatistics Merge(FeatureStatistics other)
    {
        if (other.FeatureCount != FeatureCount)
        {
            throw new ArgumentException($"Cannot merge statistics of {other.FeatureCount} features into statistics of {FeatureCount}.");
        }
        if (other.Count == 0)
        {
            return new FeatureStatistics(Count, (double[])Mean.Clone(), (double[])M2.Clone());
        }
        if (Count == 0)
        {
            return new FeatureStatistics(other.Count, (double[])other.Mean.Clone(), (double[])other.M2.Clone());
        }

        double na = Count, nb = other.Count, n = na + nb;
        var mean = new double[FeatureCount];
        var m2 = new double[FeatureCount];
        for (var j = 0; j < FeatureCount; j++)
        {
            var delta = other.Mean[j] - Mean[j];
            mean[j] = Mean[j] + delta * (nb / n);
            m2[j] = M2[j] + other.M2[j] + delta * delta * (na * nb / n);
        }
        return new FeatureStatistics(Count + other.Count, mean, m2);
    }

    /// <summary>
    /// The canonical statistics of a whole data set: partials over fixed chunks of <paramref name="chunkRows"/> rows,
    /// merged left to right in chunk order. Chunks may be computed in parallel; the result does not depend on the
    /// thread count because the chunking and the merge order do not.
    /// </summary>
    public static FeatureStatistics Compute(Dataset data, int chunkRows = DefaultChunkRows)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkRows);
        var chunks = (data.Count + chunkRows - 1) / chunkRows;
        var partials = new FeatureStatistics[chunks];
        Parallel.For(0, chunks, c =>
        {
            var start = c * chunkRows;
            partials[c] = Of(data, start, Math.Min(chunkRows, data.Count - start));
        });

        return MergeInOrder(data.FeatureCount, partials);
    }

    /// <summary>Empty, then each partial merged in list order: the canonical merge a coordinator repeats.</summary>
    public static FeatureStatistics MergeInOrder(int featureCount, IEnumerable<FeatureStatistics> partials)
    {
        var total = Empty(featureCount);
        foreach (var partial in partials)
        {
            total = total.Merge(partial);
        }
        return total;
    }
}
