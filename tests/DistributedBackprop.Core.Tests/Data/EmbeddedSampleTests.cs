using DistributedBackprop.Core.Data;
using Xunit;

namespace DistributedBackprop.Core.Tests.Data;

public sealed class EmbeddedSampleTests
{
    [Fact]
    public void Embedded_sample_has_8000_training_and_2000_test_rows_of_784_features_and_10_classes()
    {
        var split = EmbeddedSample.Load();

        Assert.Equal(8000, split.Train.Count);
        Assert.Equal(2000, split.Test.Count);
        Assert.Equal(784, split.Train.FeatureCount);
        Assert.Equal(784, split.Test.FeatureCount);
        Assert.Equal(10, split.Train.ClassCount);
        Assert.Equal(10, split.Test.ClassCount);
        Assert.Equal(10, EmbeddedSample.ClassNames.Count);
    }

    [Fact]
    public void Embedded_sample_label_histograms_are_non_degenerate()
    {
        var split = EmbeddedSample.Load();

        // Fashion-MNIST is balanced: every class holds roughly a tenth of each half.
        Assert.All(split.Train.LabelHistogram(), n => Assert.InRange(n, 600, 1000));
        Assert.All(split.Test.LabelHistogram(), n => Assert.InRange(n, 150, 250));
    }

    [Fact]
    public void Embedded_sample_pixels_are_raw_values_0_to_255()
    {
        var train = EmbeddedSample.Load().Train;

        Assert.Equal(0f, train.Features.Min());
        Assert.Equal(255f, train.Features.Max());
        Assert.All(train.Features.Take(784 * 10), v => Assert.Equal(MathF.Round(v), v));
    }

    [Fact]
    public void Each_load_returns_independent_copies()
    {
        var first = EmbeddedSample.Load();
        first.Train.Features[0] = -1f;
        first.Test.Labels[0] = 99;

        var second = EmbeddedSample.Load();

        Assert.NotEqual(-1f, second.Train.Features[0]);
        Assert.NotEqual(99, second.Test.Labels[0]);
    }

    [Fact]
    public void Embedded_sample_matches_the_committed_t10k_files_first_8000_then_last_2000()
    {
        var folder = CommittedSampleFolder();
        var all = IdxReader.Read(
            Path.Combine(folder, "t10k-images-idx3-ubyte.gz"),
            Path.Combine(folder, "t10k-labels-idx1-ubyte.gz"));

        var split = EmbeddedSample.Load();

        Assert.Equal(all.Labels[..8000], split.Train.Labels);
        Assert.Equal(all.Labels[8000..], split.Test.Labels);
        Assert.Equal(all.Features[(8000 * 784)..], split.Test.Features);
    }

    private static string CommittedSampleFolder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "data", "fashion-mnist");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }
        throw new DirectoryNotFoundException("data/fashion-mnist not found above the test binaries.");
    }
}
