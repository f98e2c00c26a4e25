using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Optim;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Core.Tests.Training;

/// <summary>
/// The arithmetic of sharded aggregation: blocks inside layers, ranges on block boundaries, and a step applied range by
/// range (squares per range, the decision made once, the optimizer per range) giving the bits of the whole-vector step.
/// </summary>
public sealed class ParameterBlocksTests
{
    private static Network Net(bool batchNorm = false) =>
        new(new NetworkSpec(NetworkSpec.ParseWidths("784-40-9000-10"), "relu", "cross-entropy", 0f, batchNorm));

    [Fact]
    public void Blocks_cover_the_parameters_in_order_each_inside_one_layer_and_at_most_a_block_long()
    {
        var network = Net();
        var blocks = new ParameterBlocks(network);
        var at = 0;
        for (var b = 0; b < blocks.Count; b++)
        {
            Assert.Equal(at, blocks.Start(b));
            Assert.InRange(blocks.End(b) - blocks.Start(b), 1, ParameterBlocks.BlockSize);
            var layer = Enumerable.Range(0, network.Layers.Count).Single(l => network.ParameterOffsets[l] <= at && at < network.ParameterOffsets[l + 1]);
            Assert.True(blocks.End(b) <= network.ParameterOffsets[layer + 1], $"block {b} crosses the end of layer {layer}");
            var (first, end) = blocks.LayerBlocks(layer);
            Assert.InRange(b, first, end - 1);
            at = blocks.End(b);
        }
        Assert.Equal(network.ParameterCount, at);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(1000)]
    public void Ranges_are_contiguous_start_on_blocks_and_end_with_the_result_tail(int count)
    {
        var network = Net();
        var blocks = new ParameterBlocks(network);
        var ranges = blocks.Ranges(count, network.ResultLength);
        Assert.Equal(Math.Min(count, blocks.Count), ranges.Count);
        Assert.Equal(0, ranges[0].First);
        Assert.Equal(network.ResultLength, ranges[^1].End);
        for (var r = 0; r < ranges.Count; r++)
        {
            Assert.True(ranges[r].First < ranges[r].End);
            Assert.True(blocks.IsBlockStart(ranges[r].First));
            Assert.True(ranges[r].First < network.ParameterCount);
            if (r > 0)
            {
                Assert.Equal(ranges[r - 1].End, ranges[r].First);
            }
        }
    }

    [Fact]
    public void Ranges_balance_the_parameters_within_a_block()
    {
        var network = Net();
        var ranges = new ParameterBlocks(network).Ranges(4, network.ResultLength);
        foreach (var (first, end) in ranges)
        {
            var size = Math.Min(end, network.ParameterCount) - first;
            Assert.InRange(size, network.ParameterCount / 4 - ParameterBlocks.BlockSize, network.ParameterCount / 4 + ParameterBlocks.BlockSize);
        }
    }

    [Fact]
    public void The_fixed_tree_over_blocks_does_not_depend_on_how_the_squares_were_grouped()
    {
        var squares = Enumerable.Range(0, 37).Select(i => 1.0 / (i + 3) + 1e-9 * i).ToArray();
        var whole = ParameterBlocks.Combine(squares);
        // The same values, the same tree: only the count shapes it.
        Assert.Equal(BitConverter.DoubleToInt64Bits(whole), BitConverter.DoubleToInt64Bits(ParameterBlocks.Combine(squares.ToArray())));
        Assert.Equal(0.0, ParameterBlocks.Combine([]));
        Assert.Equal(2.5, ParameterBlocks.Combine([2.5]));
        Assert.Equal(((1.0 + 2.0) + (3.0 + 4.0)) + 5.0, ParameterBlocks.Combine([1.0, 2.0, 3.0, 4.0, 5.0]));
    }

    public static TheoryData<string, int, bool, float> Steps => new()
    {
        { "sgd", 1, false, 5f },
        { "momentum", 2, false, 5f },
        { "momentum", 3, true, 1f }, // clipped (norms near 2), with batch-norm buffers
        { "adam", 4, false, 1f },
        { "adam", 7, true, 0f },
    };

    [Theory]
    [MemberData(nameof(Steps))]
    public void A_step_applied_range_by_range_gives_the_bits_of_the_whole_vector_step(string optimizer, int ranges,
        bool batchNorm, float clip)
    {
        var network = Net(batchNorm);
        var rng = new Random(ranges * 31 + optimizer.Length);
        TrainingState NewState() => new(network, network.Initialize(7), Optimizer.Create(optimizer, 0.9f),
            new LearningRateSchedule(0.05f, 0, "none", 0, 0.1f, 100), clip);
        var whole = NewState();
        var sharded = NewState();
        const int batch = 64, slices = 4;
        for (var step = 0; step < 3; step++)
        {
            var sum = Enumerable.Range(0, network.ResultLength).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.7f).ToArray();
            sum[network.CorrectIndex] = 10;
            var copy = (float[])sum.Clone();
            var report = whole.Apply(sum, batch, slices);

            // As the owners and the coordinator do it: squares per range, one decision, the optimizer per range.
            var blocks = sharded.Blocks;
            var p = network.ParameterCount;
            var squares = new double[blocks.Count];
            var cut = blocks.Ranges(ranges, network.ResultLength);
            foreach (var (first, end) in cut)
            {
                var parameterEnd = Math.Min(end, p);
                blocks.DivideAndSquare(copy.AsSpan(first, parameterEnd - first), first, parameterEnd, batch,
                    squares.AsSpan(blocks.BlockAt(first)));
            }
            var decision = sharded.Decide(squares, copy.AsSpan(p), batch, slices);
            Assert.Equal(report with { Warning = null }, decision.Report with { Warning = null });
            Assert.False(report.Skipped);
            Assert.Equal(clip is > 0 and < 2, report.Clipped);
            var perParameter = sharded.Optimizer.StatePerParameter;
            foreach (var (first, end) in cut.Select(r => (r.First, Math.Min(r.End, p))))
            {
                var length = end - first;
                var state = new float[perParameter * length];
                for (var k = 0; k < perParameter; k++)
                {
                    sharded.OptimizerState.AsSpan(k * p + first, length).CopyTo(state.AsSpan(k * length));
                }
                if (!decision.Report.Skipped)
                {
                    sharded.Optimizer.Step(sharded.Weights.Parameters.AsSpan(first, length), copy.AsSpan(first, length),
                        decision.Scale, state, decision.LearningRate, decision.AppliedUpdates, []);
                }
                for (var k = 0; k < perParameter; k++)
                {
                    state.AsSpan(k * length, length).CopyTo(sharded.OptimizerState.AsSpan(k * p + first));
                }
            }
            Assert.Equal(Bits(whole.Weights.Parameters), Bits(sharded.Weights.Parameters));
            Assert.Equal(Bits(whole.Weights.Buffers), Bits(sharded.Weights.Buffers));
            Assert.Equal(Bits(whole.OptimizerState), Bits(sharded.OptimizerState));
        }
    }

    private static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();
}
