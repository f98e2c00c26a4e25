namespace DistributedBackprop.Core.Data;

/// <summary>
/// A labelled classification data set held in memory: <see cref="Features"/> is Count × FeatureCount row-major.
/// </summary>
public sealed class Dataset
{
    public Dataset(string name, float[] features, int[] labels, int featureCount, int classCount)
    {
        if (featureCount <= 0 || features.Length != labels.Length * featureCount)
        {
            throw new ArgumentException($"{name}: {features.Length} feature values do not make {labels.Length} rows of {featureCount}.");
        }
        Name = name;
        Features = features;
        Labels = labels;
        FeatureCount = featureCount;
        ClassCount = classCount;
    }

    public string Name { get; }
    public float[] Features { get; }
    public int[] Labels { get; }
    public int FeatureCount { get; }
    public int ClassCount { get; }
    public int Count => Labels.Length;

    public ReadOnlySpan<float> Row(int index) => Features.AsSpan(index * FeatureCount, FeatureCount);

    /// <summary>A copy of the rows <paramref name="start"/>..start+count-1, in order, with the same class count.</summary>
    public Dataset Rows(int start, int count, string name)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start, Count - count);
        return new Dataset(
            name,
            Features.AsSpan(start * FeatureCount, count * FeatureCount).ToArray(),
            Labels.AsSpan(start, count).ToArray(),
            FeatureCount,
            ClassCount);
    }

    /// <summary>How many rows carry each label 0..ClassCount-1.</summary>
    public int[] LabelHistogram()
    {
        var histogram = new int[ClassCount];
        foreach (var label in Labels)
        {
            histogram[label]++;
        }
        return histogram;
    }
}

/// <summary>The training split and the held-out split of one data source.</summary>
public sealed record DataSplit(Dataset Train, Dataset Test);
