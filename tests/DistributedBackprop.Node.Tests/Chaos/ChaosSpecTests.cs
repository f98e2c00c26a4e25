using DistributedBackprop.Core;
using DistributedBackprop.Node.Chaos;
using Xunit;

namespace DistributedBackprop.Node.Tests.Chaos;

public sealed class ChaosSpecTests
{
    [Fact]
    public void The_issue_example_parses_into_events_ordered_by_step()
    {
        var events = ChaosSpec.Parse("stop:node-1@60/5s,kill:node-2@30", nodes: 3);
        Assert.Equal(2, events.Count);
        Assert.Equal(new ChaosEvent(ChaosAction.Kill, 2, 30, TimeSpan.Zero, "kill:node-2@30"), events[0]);
        Assert.Equal(new ChaosEvent(ChaosAction.Stop, 1, 60, TimeSpan.FromSeconds(5), "stop:node-1@60/5s"), events[1]);
    }

    [Fact]
    public void Coordinator_target_and_millisecond_durations_are_understood()
    {
        var e = Assert.Single(ChaosSpec.Parse("partition:coordinator@7/500ms", nodes: 2));
        Assert.True(e.TargetsCoordinator);
        Assert.Equal(TimeSpan.FromMilliseconds(500), e.Duration);
    }

    [Fact]
    public void A_join_has_no_target_and_the_joined_node_may_be_a_later_target()
    {
        var events = ChaosSpec.Parse("join:@20,leave:node-3@50", nodes: 3);
        Assert.Equal(new ChaosEvent(ChaosAction.Join, null, 20, TimeSpan.Zero, "join:@20"), events[0]);
        Assert.False(events[0].TargetsCoordinator);
        Assert.Equal(new ChaosEvent(ChaosAction.Leave, 3, 50, TimeSpan.Zero, "leave:node-3@50"), events[1]);
    }

    [Fact]
    public void An_owner_target_names_a_range_of_sharded_aggregation_not_a_launch_index()
    {
        var e = Assert.Single(ChaosSpec.Parse("kill:owner-1@25", nodes: 3));
        Assert.Equal(1, e.Owner);
        Assert.Null(e.Node);
        Assert.False(e.TargetsCoordinator);
        Assert.Throws<DistbpInputException>(() => ChaosSpec.Parse("kill:owner-3@25", nodes: 3));
    }

    [Fact]
    public void Empty_spec_injects_nothing() => Assert.Empty(ChaosSpec.Parse(null, 3));

    [Theory]
    [InlineData("explode:node-1@3")]
    [InlineData("kill:node-3@3")]
    [InlineData("kill:worker@3")]
    [InlineData("kill:node-1")]
    [InlineData("kill:node-1@x")]
    [InlineData("stop:node-1@3")]
    [InlineData("slow:node-1@3/fast")]
    [InlineData("node-1@3")]
    [InlineData("join:node-1@3")]
    [InlineData("leave:node-3@3")]
    public void Malformed_specs_are_refused_naming_the_event(string spec)
    {
        var error = Assert.Throws<DistbpInputException>(() => ChaosSpec.Parse(spec, nodes: 3));
        Assert.StartsWith("--chaos: ", error.Message);
        Assert.Contains(spec, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }
}
