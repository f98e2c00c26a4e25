using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Core.Tests.Training;

public sealed class GradientTreeTests
{
    private const int Length = 29;
    public static readonly TheoryData<int> SliceCounts = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17];

    [Theory]
    [MemberData(nameof(SliceCounts))]
    public void Cover_returns_maximal_aligned_blocks_that_exactly_partition_the_range(int sliceCount)
    {
        var root = GradientTree.RootLevel(sliceCount);
        Assert.True(1 << root >= sliceCount && (root == 0 || 1 << (root - 1) < sliceCount));
        for (var first = 0; first < sliceCount; first++)
        {
            for (var end = first + 1; end <= sliceCount; end++)
            {
                var nodes = GradientTree.Cover(first, end, sliceCount);
                var position = first;
                foreach (var node in nodes)
                {
                    Assert.Equal(position, node.First);
                    Assert.Equal(0, node.First % (1 << node.Level));
                    Assert.True(node.End(sliceCount) <= end);
                    Assert.True(node.Level <= root);
                    // Maximal: the parent reaches outside the range (or the node is the root).
                    var parent = node.Parent;
                    Assert.True(node.Level == root || parent.First < first || parent.End(sliceCount) > end,
                        $"S={sliceCount} [{first},{end}): {node} could be its parent {parent}");
                    position = node.End(sliceCount);
                }
                Assert.Equal(end, position);
            }
        }
        Assert.Equal([new TreeNode(root, 0)], GradientTree.Cover(0, sliceCount, sliceCount));
    }

    [Theory]
    [MemberData(nameof(SliceCounts))]
    public void Leaves_added_in_any_order_give_a_root_with_identical_bits(int sliceCount)
    {
        var leaves = Leaves(sliceCount);
        var inOrder = Reduce(sliceCount, Enumerable.Range(0, sliceCount).Select(s => (new TreeNode(0, s), leaves[s])));

        var random = new Random(sliceCount);
        for (var trial = 0; trial < 8; trial++)
        {
            var order = Enumerable.Range(0, sliceCount).OrderBy(_ => random.Next()).ToArray();
            var root = Reduce(sliceCount, order.Select(s => (new TreeNode(0, s), leaves[s])));
            AssertSameBits(inOrder, root);
        }
    }

    [Theory]
    [MemberData(nameof(SliceCounts))]
    public void Contiguous_groups_pre_reduced_by_another_reducer_give_a_root_with_identical_bits(int sliceCount)
    {
        var leaves = Leaves(sliceCount);
        var inOrder = Reduce(sliceCount, Enumerable.Range(0, sliceCount).Select(s => (new TreeNode(0, s), leaves[s])));

        var random = new Random(100 + sliceCount);
        for (var trial = 0; trial < 8; trial++)
        {
            // Random cut points make random contiguous runs, as workers holding several slices would.
            var cuts = Enumerable.Range(1, sliceCount - 1).Where(_ => random.Next(3) == 0).Prepend(0).Append(sliceCount).ToArray();
            var parts = new List<(TreeNode, float[])>();
            for (var g = 0; g + 1 < cuts.Length; g++)
            {
                var worker = new GradientTreeReducer(sliceCount, BufferPool.ForSlices(Length, sliceCount));
                foreach (var s in Enumerable.Range(cuts[g], cuts[g + 1] - cuts[g]).OrderBy(_ => random.Next()))
                {
                    Assert.True(worker.Add(new TreeNode(0, s), (float[])leaves[s].Clone()));
                }
                var pending = worker.TakePending();
                Assert.Equal(GradientTree.Cover(cuts[g], cuts[g + 1], sliceCount).ToHashSet(), pending.Select(p => p.Key).ToHashSet());
                parts.AddRange(pending.Select(p => (p.Key, p.Value)));
            }
            var root = Reduce(sliceCount, parts.OrderBy(_ => random.Next()));
            AssertSameBits(inOrder, root);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(9)]
    public void Leaves_computed_with_their_pending_addends_give_the_bits_of_adding_them_one_by_one(int sliceCount)
    {
        // What a compute thread does: its run of slices in ascending order, each leaf written with the pending sums it
        // completes already added (addend + leaf, lowest level first), then the runs' nodes combined as usual.
        var leaves = Leaves(sliceCount);
        var expected = Reduce(sliceCount, Enumerable.Range(0, sliceCount).Select(s => (new TreeNode(0, s), leaves[s])));
        var random = new Random(200 + sliceCount);
        for (var trial = 0; trial < 8; trial++)
        {
            var cuts = Enumerable.Range(1, Math.Max(0, sliceCount - 1)).Where(_ => random.Next(3) == 0).Prepend(0)
                .Append(sliceCount).ToArray();
            var parts = new List<(TreeNode, float[])>();
            for (var g = 0; g + 1 < cuts.Length; g++)
            {
                var thread = new GradientTreeReducer(sliceCount, BufferPool.ForSlices(Length, sliceCount), keepSpares: true);
                var addends = new List<float[]>();
                for (var s = cuts[g]; s < cuts[g + 1]; s++)
                {
                    var node = thread.PendingAddends(s, addends);
                    var sum = thread.Rent();
                    leaves[s].CopyTo(sum, 0);
                    foreach (var addend in addends)
                    {
                        for (var i = 0; i < Length; i++)
                        {
                            sum[i] = addend[i] + sum[i];
                        }
                    }
                    thread.AddCombined(s, node, sum);
                }
                var pending = thread.TakePending();
                Assert.Equal(GradientTree.Cover(cuts[g], cuts[g + 1], sliceCount).ToHashSet(), pending.Select(p => p.Key).ToHashSet());
                parts.AddRange(pending.Select(p => (p.Key, p.Value)));
            }
            AssertSameBits(expected, Reduce(sliceCount, parts.OrderBy(_ => random.Next())));
        }
    }

    [Fact]
    public void A_combined_node_that_was_not_planned_or_a_covered_slice_is_refused()
    {
        var reducer = new GradientTreeReducer(4, BufferPool.ForSlices(Length, 4));
        var addends = new List<float[]>();
        reducer.AddCombined(0, reducer.PendingAddends(0, addends), new float[Length]);

        // Slice 2's node is itself (slice 3 has not come); claiming its parent skips a sum that is not pending.
        Assert.Throws<InvalidOperationException>(() => reducer.AddCombined(2, new TreeNode(1, 1), new float[Length]));
        Assert.Throws<ArgumentException>(() => reducer.AddCombined(0, new TreeNode(0, 0), new float[Length]));
        Assert.Throws<ArgumentException>(() => reducer.AddCombined(4, new TreeNode(0, 4), new float[Length]));
    }

    [Fact]
    public void Test_data_is_sensitive_to_the_summation_order()
    {
        // Guards the two tests above: a plain left-to-right sum of these leaves differs in bits from the tree's.
        var leaves = Leaves(7);
        var tree = Reduce(7, Enumerable.Range(0, 7).Select(s => (new TreeNode(0, s), leaves[s])));
        var sequential = new float[Length];
        foreach (var leaf in leaves)
        {
            for (var i = 0; i < Length; i++)
            {
                sequential[i] += leaf[i];
            }
        }
        Assert.NotEqual(sequential, tree);
    }

    [Fact]
    public void Duplicate_and_overlapping_results_are_refused_and_do_not_change_the_sum()
    {
        const int sliceCount = 6;
        var leaves = Leaves(sliceCount);
        var expected = Reduce(sliceCount, Enumerable.Range(0, sliceCount).Select(s => (new TreeNode(0, s), leaves[s])));
        var reducer = new GradientTreeReducer(sliceCount, BufferPool.ForSlices(Length, sliceCount));
        var garbage = Enumerable.Repeat(1e6f, Length).ToArray();

        Assert.True(reducer.Add(new TreeNode(0, 2), (float[])leaves[2].Clone()));
        Assert.False(reducer.Add(new TreeNode(0, 2), (float[])garbage.Clone()));
        Assert.True(reducer.Add(new TreeNode(0, 0), (float[])leaves[0].Clone()));
        Assert.True(reducer.Add(new TreeNode(0, 1), (float[])leaves[1].Clone()));
        Assert.False(reducer.Add(new TreeNode(1, 0), (float[])garbage.Clone()));
        Assert.False(reducer.Add(new TreeNode(2, 0), (float[])garbage.Clone()));
        Assert.Equal(3, reducer.CoveredSlices);
        Assert.True(reducer.Add(new TreeNode(1, 2), Sum(leaves[4], leaves[5])));
        Assert.False(reducer.Add(new TreeNode(0, 5), (float[])garbage.Clone()));
        Assert.False(reducer.IsComplete);
        Assert.True(reducer.Add(new TreeNode(0, 3), (float[])leaves[3].Clone()));
        Assert.False(reducer.Add(new TreeNode(0, 3), (float[])garbage.Clone()));

        Assert.True(reducer.IsComplete);
        Assert.Equal(sliceCount, reducer.CoveredSlices);
        AssertSameBits(expected, reducer.Root);
    }

    [Fact]
    public void Node_outside_the_tree_is_an_argument_error()
    {
        var reducer = new GradientTreeReducer(5, BufferPool.ForSlices(Length, 5));

        var e = Assert.Throws<ArgumentException>(() => reducer.Add(new TreeNode(0, 5), new float[Length]));
        Assert.Contains("Index = 5", e.Message);
        Assert.Throws<ArgumentException>(() => reducer.Add(new TreeNode(4, 0), new float[Length]));
        Assert.Throws<InvalidOperationException>(() => reducer.Root);
    }

    [Fact]
    public void Tree_node_prints_its_level_and_index()
    {
        Assert.Equal("TreeNode { Level = 2, Index = 3 }", new TreeNode(2, 3).ToString());
    }

    /// <summary>Leaves with mixed magnitudes, so any change of addition order shows in the bits.</summary>
    private static float[][] Leaves(int sliceCount)
    {
        var random = new Random(sliceCount * 7919);
        return Enumerable.Range(0, sliceCount)
            .Select(_ => Enumerable.Range(0, Length)
                .Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-4, 5)))).ToArray())
            .ToArray();
    }

    private static float[] Reduce(int sliceCount, IEnumerable<(TreeNode Node, float[] Sum)> parts)
    {
        var reducer = new GradientTreeReducer(sliceCount, BufferPool.ForSlices(Length, sliceCount));
        foreach (var (node, sum) in parts)
        {
            Assert.True(reducer.Add(node, (float[])sum.Clone()));
        }
        Assert.True(reducer.IsComplete);
        return reducer.Root;
    }

    /// <summary>The sum of two siblings exactly as the tree forms it: left + right.</summary>
    private static float[] Sum(float[] left, float[] right) => left.Zip(right, (a, b) => a + b).ToArray();

    private static void AssertSameBits(float[] expected, float[] actual)
    {
        for (var i = 0; i < Length; i++)
        {
            Assert.Equal(BitConverter.SingleToInt32Bits(expected[i]), BitConverter.SingleToInt32Bits(actual[i]));
        }
    }
}
