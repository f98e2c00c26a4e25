using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Cluster.Tests.Protocol;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

public sealed class StepCollectionTests
{
    private static readonly TrainingSetup Setup = TrainingSetup.Create(ProtocolSamples.TinyOptions(), ProtocolSamples.Subset(256, 64));

    private static SliceResult Result(int level, int index, int length) =>
        new("run", 0, 0, level, index, new float[length], "worker-0", 0);

    [Theory]
    [InlineData(0, 0, true)]
    [InlineData(0, 7, true)]
    [InlineData(3, 0, true)]
    [InlineData(1, 3, true)]
    [InlineData(0, 8, false)]
    [InlineData(1, 4, false)]
    [InlineData(4, 0, false)]
    [InlineData(-1, 0, false)]
    [InlineData(0, -1, false)]
    // (2, 2^30): its first slice, Index << Level, wraps to 0 in 32-bit.
    [InlineData(2, 1 << 30, false)]
    public void Only_a_subtree_of_this_runs_slice_tree_is_well_formed(int level, int index, bool wellFormed)
    {
        var step = new StepCollection(Setup, new BufferPool(Setup.Network.ResultLength, 4));
        Assert.Equal(wellFormed, step.IsWellFormed(Result(level, index, Setup.Network.ResultLength)));
    }

    [Fact]
    public void A_sum_of_the_wrong_length_is_not_well_formed()
    {
        var step = new StepCollection(Setup, new BufferPool(Setup.Network.ResultLength, 4));
        Assert.False(step.IsWellFormed(Result(0, 0, Setup.Network.ResultLength - 1)));
    }

    [Fact]
    public void The_step_line_names_the_worker_of_each_slice_and_each_straggler_once()
    {
        var pool = new BufferPool(Setup.Network.ResultLength, 8);
        var step = new StepCollection(Setup, pool);
        step.Begin();
        Assert.False(step.Add(new TreeNode(2, 0), "worker-0", pool.Rent()));
        step.Straggler("worker-1");
        step.Straggler("worker-1");
        Assert.False(step.Add(new TreeNode(1, 2), "worker-1", pool.Rent()));
        Assert.True(step.Add(new TreeNode(1, 3), "worker-2", pool.Rent()));
        Assert.Equal(["worker-0", "worker-0", "worker-0", "worker-0", "worker-1", "worker-1", "worker-2", "worker-2"],
            step.SliceWorkers);
        Assert.Equal(["worker-1"], step.Stragglers);

        step.Tree.Reset();
        step.Begin();
        Assert.All(step.SliceWorkers, Assert.Null);
        Assert.Empty(step.Stragglers);
    }
}
