using DistributedBackprop.Core.Data;
using Xunit;

namespace DistributedBackprop.Core.Tests.Data;

public sealed class FeatureStatisticsTests
{
    private static Dataset Random(int rows, int features, int seed)
    {
        var rng = new Random(seed);
        var values = new float[rows * features];
        for (var i = 0; i < values.Length; i++)
        {
            var j = i % features;
            // Feature j has offset 100·j and scale j+1; feature 0 is constant, to cover M2 = 0.
            values[i] = j == 0 ? 3.5f : (float)(100 * j + (j + 1) * (rng.NextDouble() * 2 - 1));
        }
        return new Dataset("random", values, new int[rows], features, 2);
    }

    private static void AssertClose(double expected, double actual, double relative = 1e-9)
    {
        var tolerance = relative * Math.Max(Math.Abs(expected), Math.Abs(actual)) + 1e-12;
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"expected {expected:R}, got {actual:R}");
    }

    private static void AssertSame(FeatureStatistics expected, FeatureStatistics actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var j = 0; j < expected.FeatureCount; j++)
        {
            AssertClose(expected.Mean[j], actual.Mean[j]);
            AssertClose(expected.M2[j], actual.M2[j]);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(999)]
    [InlineData(1000)]
    [InlineData(4096)]
    public void Merged_chunk_partials_equal_whole_data_statistics(int chunkRows)
    {
        var data = Random(1000, 5, seed: 1);

        AssertSame(FeatureStatistics.Of(data, 0, data.Count), FeatureStatistics.Compute(data, chunkRows));
    }

    [Fact]
    public void Merged_uneven_partials_equal_whole_data_statistics_in_any_grouping()
    {
        var data = Random(500, 4, seed: 2);
        var a = FeatureStatistics.Of(data, 0, 3);
        var b = FeatureStatistics.Of(data, 3, 250);
        var c = FeatureStatistics.Of(data, 253, 247);
        var whole = FeatureStatistics.Of(data, 0, 500);

        AssertSame(whole, a.Merge(b).Merge(c));
        AssertSame(whole, a.Merge(b.Merge(c)));
        AssertSame(whole, c.Merge(a).Merge(b));
    }

    [Fact]
    public void Whole_data_statistics_match_a_naive_mean_and_population_variance()
    {
        var data = Random(300, 3, seed: 3);
        var stats = FeatureStatistics.Compute(data, chunkRows: 64);

        for (var j = 0; j < 3; j++)
        {
            var column = Enumerable.Range(0, data.Count).Select(r => (double)data.Row(r)[j]).ToArray();
            var mean = column.Average();
            var variance = column.Select(x => (x - mean) * (x - mean)).Sum() / column.Length;
            AssertClose(mean, stats.Mean[j]);
            AssertClose(variance, stats.Variance(j), 1e-8);
        }
    }

    [Fact]
    public void Compute_gives_identical_bits_on_every_run()
    {
        var data = Random(5000, 8, seed: 4);

        var first = FeatureStatistics.Compute(data, chunkRows: 100);
        var second = FeatureStatistics.Compute(data, chunkRows: 100);

        Assert.Equal(first.Mean, second.Mean);
        Assert.Equal(first.M2, second.M2);
    }

    [Fact]
    public void Merging_with_empty_statistics_changes_nothing()
    {
        var data = Random(10, 3, seed: 5);
        var stats = FeatureStatistics.Of(data, 0, 10);
        var empty = FeatureStatistics.Empty(3);

        Assert.Equal(stats.M2, stats.Merge(empty).M2);
        Assert.Equal(stats.Mean, empty.Merge(stats).Mean);
        Assert.Equal(10, empty.Merge(stats).Count);
    }

    [Fact]
    public void Merge_leaves_both_inputs_unchanged()
    {
        var data = Random(20, 2, seed: 6);
        var a = FeatureStatistics.Of(data, 0, 10);
        var b = FeatureStatistics.Of(data, 10, 10);
        var (aMean, bM2) = ((double[])a.Mean.Clone(), (double[])b.M2.Clone());

        a.Merge(b);

        Assert.Equal(aMean, a.Mean);
        Assert.Equal(bM2, b.M2);
    }

    [Fact]
    public void Row_range_outside_the_data_is_refused()
    {
        var data = Random(10, 2, seed: 7);

        Assert.Throws<ArgumentOutOfRangeException>(() => FeatureStatistics.Of(data, 5, 6));
    }
}
