using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Tests.Support;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Core.Tests.Training;

/// <summary>What one worker computes for a run of slices: the canonical subtree sums, whatever its threads do.</summary>
public sealed class SliceRunnerTests
{
    private const int Slices = 6;
    private const int SliceSize = 8;

    [Theory]
    [InlineData(0, 6, 2)]
    [InlineData(0, 6, 3)]
    [InlineData(1, 5, 2)]
    [InlineData(2, 6, 4)]
    public void A_run_on_several_threads_returns_the_bits_of_each_slice_added_to_the_tree_alone(int first, int end, int threads)
    {
        var (network, weights, data, batch) = Fixture();
        var pool = BufferPool.ForSlices(network.ResultLength, Slices);
        using var runner = new SliceRunner(network, SliceSize, Slices, threads, pool);

        var result = runner.Run(weights, data, batch, 7, 3, first, end);

        // The reference: every slice computed on its own and added to a plain reducer.
        var reference = new GradientTreeReducer(Slices, pool);
        var workspace = new Workspace(network, SliceSize);
        for (var s = first; s < end; s++)
        {
            var leaf = new float[network.ResultLength];
            SliceComputer.Compute(network, weights, data, batch.Span.Slice(s * SliceSize, SliceSize), 7, 3, workspace, leaf);
            reference.Add(new TreeNode(0, s), leaf);
        }
        var expected = reference.TakePending().ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal(expected.Keys.ToHashSet(), result.Select(p => p.Key).ToHashSet());
        foreach (var (node, sum) in result)
        {
            Assert.Equal(expected[node].Select(BitConverter.SingleToInt32Bits), sum.Select(BitConverter.SingleToInt32Bits));
        }
    }

    [Fact]
    public async Task A_thread_that_throws_fails_the_run_without_stalling_the_others_and_the_next_run_is_clean()
    {
        var (network, weights, data, batch) = Fixture();
        using var runner = new SliceRunner(network, SliceSize, Slices, 2, BufferPool.ForSlices(network.ResultLength, Slices));
        var broken = batch.ToArray();
        broken[5 * SliceSize] = data.Count + 1; // slice 5, on the second thread: a sample that does not exist

        // A thread that stalled at the combining barrier would hang the run: bounded by a deadline.
        var failing = Task.Run(() => runner.Run(weights, data, broken, 7, 3, 0, Slices));
        var failure = await Record.ExceptionAsync(() => failing.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.NotNull(failure);
        Assert.IsNotType<TimeoutException>(failure);

        var again = runner.Run(weights, data, batch, 7, 3, 0, Slices);
        using var fresh = new SliceRunner(network, SliceSize, Slices, 2, BufferPool.ForSlices(network.ResultLength, Slices));
        var expected = fresh.Run(weights, data, batch, 7, 3, 0, Slices);
        Assert.Equal(expected.Single().Value.Select(BitConverter.SingleToInt32Bits),
            again.Single().Value.Select(BitConverter.SingleToInt32Bits));
    }

    private static (Network, ModelWeights, Core.Data.Dataset, ReadOnlyMemory<int>) Fixture()
    {
        var network = new Network(new NetworkSpec([12, 16, 8, 3], "relu", "cross-entropy", 0f, false));
        var weights = network.Initialize(5);
        var data = SampleData.Blobs(100, 12, 3, seed: 9);
        var batch = Enumerable.Range(0, Slices * SliceSize).Select(i => (i * 37) % data.Count).ToArray();
        return (network, weights, data, batch);
    }
}
