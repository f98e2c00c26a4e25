using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Core.Tests.Training;

public sealed class SlicePlanTests
{
    [Fact]
    public void Epoch_permutation_is_a_permutation_of_the_sample_indices()
    {
        var permutation = SlicePlan.Shuffle(seed: 4, epoch: 2, count: 1000);

        Assert.Equal(Enumerable.Range(0, 1000), permutation.Order());
        Assert.NotEqual(Enumerable.Range(0, 1000), permutation);
    }

    [Fact]
    public void Permutation_depends_on_seed_and_epoch_only()
    {
        Assert.Equal(SlicePlan.Shuffle(4, 2, 500), SlicePlan.Shuffle(4, 2, 500));
        Assert.Equal(new SlicePlan(4, 500, 50, 5).Permutation(2), new SlicePlan(4, 500, 100, 10).Permutation(2));
        Assert.NotEqual(SlicePlan.Shuffle(4, 2, 500), SlicePlan.Shuffle(4, 3, 500));
        Assert.NotEqual(SlicePlan.Shuffle(4, 2, 500), SlicePlan.Shuffle(5, 2, 500));
    }

    [Fact]
    public void Slices_of_a_step_partition_its_batch_in_order()
    {
        var plan = new SlicePlan(seed: 9, sampleCount: 103, globalBatch: 24, sliceCount: 6);
        var permutation = plan.Permutation(0);

        for (var step = 0; step < plan.StepsPerEpoch; step++)
        {
            var batch = new List<int>();
            for (var s = 0; s < 6; s++)
            {
                var slice = plan.Slice(step, s).ToArray();
                Assert.Equal(4, slice.Length);
                batch.AddRange(slice);
            }
            Assert.Equal(permutation.AsSpan(step * 24, 24).ToArray(), batch);
        }
    }

    [Fact]
    public void Partial_last_batch_is_dropped_and_the_next_epoch_reshuffles()
    {
        var plan = new SlicePlan(seed: 9, sampleCount: 103, globalBatch: 24, sliceCount: 6);

        Assert.Equal(4, plan.StepsPerEpoch);
        Assert.Equal((0, 3), plan.Locate(3));
        Assert.Equal((1, 0), plan.Locate(4));
        Assert.Equal(SlicePlan.Shuffle(9, 1, 103).AsSpan(0, 4).ToArray(), plan.Slice(4, 0).ToArray());
        // The 7 samples past 4 × 24 are never in a step of epoch 0.
        var used = Enumerable.Range(0, 4).SelectMany(t => Enumerable.Range(0, 6).SelectMany(s => plan.Slice(t, s).ToArray()))
            .ToHashSet();
        Assert.Equal(96, used.Count);
        Assert.All(SlicePlan.Shuffle(9, 0, 103)[96..], i => Assert.DoesNotContain(i, used));
    }

    [Theory]
    [InlineData(100, 30, 7)]
    [InlineData(100, 30, 0)]
    [InlineData(100, 0, 1)]
    public void Batch_not_divisible_by_slices_is_rejected(int samples, int batch, int slices)
    {
        var e = Assert.Throws<DistbpInputException>(() => new SlicePlan(1, samples, batch, slices));
        Assert.Equal("Slices", e.Option);
    }

    [Fact]
    public void Batch_larger_than_the_data_is_rejected()
    {
        var e = Assert.Throws<DistbpInputException>(() => new SlicePlan(1, 100, 128, 8));
        Assert.Equal("Batch", e.Option);
        Assert.Contains("100", e.Message);
    }

    [Fact]
    public void Slice_outside_the_step_is_refused()
    {
        var plan = new SlicePlan(1, 100, 20, 4);

        Assert.Throws<ArgumentOutOfRangeException>(() => plan.Slice(0, 4).ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => plan.Slice(0, -1).ToArray());
    }
}
