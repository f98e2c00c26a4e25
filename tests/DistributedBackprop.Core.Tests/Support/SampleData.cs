using DistributedBackprop.Core.Data;

namespace DistributedBackprop.Core.Tests.Support;

/// <summary>Small cuts of the embedded Fashion-MNIST sample (decoded once per test run), and synthetic data sets.</summary>
internal static class SampleData
{
    private static readonly Lazy<DataSplit> Embedded = new(EmbeddedSample.Load);

    /// <summary>The first <paramref name="train"/> training and <paramref name="test"/> test rows, raw pixels.</summary>
    public static DataSplit Cut(int train, int test) =>
        new(Embedded.Value.Train.Rows(0, train, "sample [train]"), Embedded.Value.Test.Rows(0, test, "sample [test]"));

    /// <summary>Gaussian-ish blobs, one centre per class: learnable, so training behaves as on real data.</summary>
    public static Dataset Blobs(int count, int features, int classes, int seed, string name = "blobs")
    {
        var random = new Random(seed);
        var centres = Enumerable.Range(0, classes * features).Select(_ => random.NextDouble() * 4 - 2).ToArray();
        var x = new float[count * features];
        var labels = new int[count];
        for (var i = 0; i < count; i++)
        {
            labels[i] = random.Next(classes);
            for (var j = 0; j < features; j++)
            {
                var noise = random.NextDouble() + random.NextDouble() + random.NextDouble() - 1.5;
                x[i * features + j] = (float)(centres[labels[i] * features + j] + noise);
            }
        }
        return new Dataset(name, x, labels, features, classes);
    }
}
