using System.Numerics.Tensors;

namespace DistributedBackprop.Core.Data;

/// <summary>
/// Standardises features: x' = (x − Mean[j]) / Std[j], with mean and population standard deviation taken from the
/// training split only. A feature whose std is below <see cref="MinStd"/> (a constant pixel) gets std 1, so it stays finite.
/// Saved inside model files as its two arrays and rebuilt with the constructor.
/// </summary>
public sealed class FeatureNormaliser
{
    public const double MinStd = 1e-6;

    /// <summary>Rebuilds a normaliser from stored arrays (e.g. read from a model file).</summary>
    public FeatureNormaliser(float[] mean, float[] std)
    {
        if (mean.Length != std.Length || mean.Length == 0)
        {
            throw new ArgumentException($"A normaliser needs equally long, non-empty mean and std arrays; got {mean.Length} and {std.Length}.");
        }
        for (var j = 0; j < mean.Length; j++)
        {
            if (!float.IsFinite(mean[j]) || !float.IsFinite(std[j]) || std[j] <= 0)
            {
                throw new ArgumentException($"Feature {j} has mean {mean[j]} and std {std[j]}; both must be finite and std positive.");
            }
        }
        Mean = mean;
        Std = std;
    }

    public float[] Mean { get; }
    public float[] Std { get; }
    public int FeatureCount => Mean.Length;

    public static FeatureNormaliser FromStatistics(FeatureStatistics statistics)
    {
        if (statistics.Count == 0)
        {
            throw new ArgumentException("Cannot normalise with statistics of zero rows.");
        }
        var mean = new float[statistics.FeatureCount];
        var std = new float[statistics.FeatureCount];
        for (var j = 0; j < mean.Length; j++)
        {
            mean[j] = (float)statistics.Mean[j];
            var s = Math.Sqrt(statistics.Variance(j));
            std[j] = s < MinStd ? 1f : (float)s;
        }
        return new FeatureNormaliser(mean, std);
    }

    /// <summary>Fits on the training split with the canonical <see cref="FeatureStatistics.Compute"/>.</summary>
    public static FeatureNormaliser Fit(Dataset train) => FromStatistics(FeatureStatistics.Compute(train));

    /// <summary>A new, normalised copy of <paramref name="data"/> (same name, labels copied); the input is not changed.</summary>
    public Dataset Apply(Dataset data)
    {
        if (data.FeatureCount != FeatureCount)
        {
            throw new DistbpInputException(
                $"data: '{data.Name}' has {data.FeatureCount} features per row but the normaliser was fitted on {FeatureCount}; use data shaped like the training data");
        }
        var features = (float[])data.Features.Clone();
        for (var r = 0; r < data.Count; r++)
        {
            Apply(features.AsSpan(r * FeatureCount, FeatureCount));
        }
        return new Dataset(data.Name, features, (int[])data.Labels.Clone(), data.FeatureCount, data.ClassCount);
    }

    /// <summary>Normalises one row in place. Element-wise IEEE operations: identical bits on every vector width.</summary>
    public void Apply(Span<float> row)
    {
        if (row.Length != FeatureCount)
        {
            throw new ArgumentException($"Row has {row.Length} features; the normaliser has {FeatureCount}.", nameof(row));
        }
        TensorPrimitives.Subtract(row, Mean, row);
        TensorPrimitives.Divide(row, Std, row);
    }
}
