using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Core.Tests.Training;

public sealed class BufferPoolTests
{
    [Fact]
    public void Buffers_returned_beyond_the_capacity_are_not_kept()
    {
        // The coordinator's reducer returns every remote result it combines, though it never rented them: a pool that
        // kept them all grew by one parameter vector a step.
        var pool = new BufferPool(16, capacity: 4);
        for (var step = 0; step < 1_000; step++)
        {
            pool.Return(new float[16]);
        }
        Assert.Equal(4, pool.FreeCount);
    }

    [Fact]
    public void A_buffer_of_another_length_is_never_handed_out()
    {
        var pool = new BufferPool(16, capacity: 4);
        pool.Return(new float[15]);
        pool.Return(new float[17]);
        Assert.Equal(0, pool.FreeCount);
        Assert.Equal(16, pool.Rent().Length);
    }

    [Fact]
    public void A_returned_buffer_is_rented_again()
    {
        var pool = BufferPool.ForSlices(16, sliceCount: 8);
        var buffer = pool.Rent();
        pool.Return(buffer);
        Assert.Same(buffer, pool.Rent());
        Assert.True(pool.Capacity >= 2 * 8);
    }
}
