using DistributedBackprop.Cluster.Coordinator;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

public sealed class EndOfJobTests
{
    [Theory]
    [InlineData(3, 0, true)]
    [InlineData(3, 1, true)]
    [InlineData(3, 2, false)]
    [InlineData(2, 1, false)]
    [InlineData(4, 2, false)]
    [InlineData(5, 2, true)]
    public void Only_a_side_with_more_than_half_the_members_downs_the_unreachable_ones(int members, int unreachable,
        bool downs)
    {
        Assert.Equal(downs, EndOfJob.HoldsMajority(members, unreachable));
    }
}
