using DistributedBackprop.Cluster.Coordinator;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

public sealed class ChunkResultsTests
{
    [Fact]
    public void Each_chunk_counts_once_in_any_order_and_the_values_stay_in_chunk_order()
    {
        var chunks = new ChunkResults<int>(3);
        Assert.Equal([0, 1, 2], chunks.Missing);
        Assert.False(chunks.Add(2, 20));
        Assert.False(chunks.IsAwaited(2));
        Assert.Equal([0, 1], chunks.Missing);
        Assert.False(chunks.Add(0, 0));
        Assert.True(chunks.Add(1, 10));
        Assert.True(chunks.IsComplete);
        Assert.Equal([0, 10, 20], chunks.Values);
        Assert.Empty(chunks.Missing);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(3)]
    [InlineData(int.MaxValue)]
    public void A_chunk_outside_the_range_is_not_awaited(int chunk)
    {
        Assert.False(new ChunkResults<int>(3).IsAwaited(chunk));
    }
}
