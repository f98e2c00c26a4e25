using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

public sealed class PublishedWeightsTests
{
    [Fact]
    public void A_version_is_a_copy_that_later_changes_to_the_weights_do_not_touch()
    {
        var weights = new ModelWeights([1f, 2f], [3f]);
        var published = new PublishedWeights("run-1");
        var version = published.Publish(0, weights, parametersWritten: false);
        weights.Parameters[0] = 9f;
        weights.Buffers[0] = 9f;

        Assert.Equal("run-1", version.RunId);
        Assert.Equal(0, version.Version);
        Assert.Equal([1f, 2f], version.Parameters);
        Assert.Equal([3f], version.Buffers);
        Assert.Same(version, published.Current);
    }

    [Fact]
    public void The_optimizer_writes_the_next_versions_parameters_in_place_and_they_are_not_copied_again()
    {
        var weights = new ModelWeights([1f, 2f], [3f]);
        var published = new PublishedWeights("run-1");
        var target = published.ParametersOf(1, weights);
        target[0] = 5f;
        target[1] = 6f;
        var version = published.Publish(1, weights, parametersWritten: true);
        Assert.Same(target, version.Parameters);
        Assert.Equal([5f, 6f], version.Parameters);
        Assert.Equal([3f], version.Buffers);
    }

    [Fact]
    public void Buffers_are_reused_only_after_more_versions_than_a_cache_keeps()
    {
        var weights = new ModelWeights([1f], [1f]);
        var published = new PublishedWeights("run-1");
        var versions = Enumerable.Range(0, WeightsRetention.PublishedVersions + 1)
            .Select(step => published.Publish(step, weights, parametersWritten: false)).ToList();
        Assert.True(WeightsRetention.PublishedVersions > WeightsRetention.CachedVersions);
        // Every version a cache may still hold has buffers of its own...
        Assert.Equal(WeightsRetention.PublishedVersions,
            versions.Take(WeightsRetention.PublishedVersions).Select(v => v.Parameters).Distinct().Count());
        // ...and the ring comes round after that.
        Assert.Same(versions[0].Parameters, versions[^1].Parameters);
    }
}
