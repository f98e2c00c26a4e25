using Akka.Actor;
using DistributedBackprop.Cluster.Coordinator;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

public sealed class ClusterViewTests
{
    private static readonly Address Self = new("akka.tcp", "distbp", "10.0.0.1", 4053);
    private static readonly Address Other = new("akka.tcp", "distbp", "10.0.0.2", 4053);
    private static readonly Address Stranger = new("akka.tcp", "distbp", "10.0.0.9", 4053);

    [Fact]
    public void A_lost_node_gives_back_the_workers_placed_on_it_and_is_not_usable_until_reachable_again()
    {
        var view = new ClusterView(Self);
        view.MemberUp(Self);
        view.MemberUp(Other);
        view.Place("worker-0", Self.ToString());
        view.Place("worker-1", Other.ToString());
        view.Place("worker-2", Other.ToString());

        Assert.Equal(["worker-1", "worker-2"], view.Lost(Other));
        Assert.False(view.IsUsable(Other));
        Assert.True(view.IsUsable(Self));
        Assert.Equal(["worker-1", "worker-2"], view.Reachable(Other).ToList());
        Assert.True(view.IsUsable(Other));
    }

    [Fact]
    public void The_coordinators_own_node_is_never_lost_to_it()
    {
        var view = new ClusterView(Self);
        view.MemberUp(Self);
        view.Place("worker-0", Self.ToString());
        Assert.Empty(view.Lost(Self));
        Assert.True(view.IsUsable(Self));
    }

    [Fact]
    public void Only_members_caches_are_kept_and_only_reachable_ones_get_weights()
    {
        var view = new ClusterView(Self);
        view.MemberUp(Self);
        view.MemberUp(Other);
        Assert.True(view.CacheFound(Self, ActorRefs.Nobody));
        Assert.True(view.CacheFound(Other, ActorRefs.Nobody));
        Assert.False(view.CacheFound(Stranger, ActorRefs.Nobody));
        Assert.Equal(2, view.Caches.Count);
        view.Lost(Other);
        Assert.Single(view.ReachableCaches);
        view.Removed(Other);
        Assert.Single(view.Caches);
        Assert.DoesNotContain(Other, view.Members);
        Assert.DoesNotContain(Other, view.Unreachable);
    }

    [Fact]
    public void Only_nodes_with_the_coordinators_options_count_and_a_refused_one_learns_nothing_of_the_run()
    {
        var view = new ClusterView(Self);
        view.MemberUp(Self);
        view.MemberUp(Other);
        view.CacheFound(Self, ActorRefs.Nobody);
        view.CacheFound(Other, ActorRefs.Nobody);

        var refused = view.Register(Other, "other-hash", "run-1", "our-hash", out var counted);
        Assert.False(refused.Accepted);
        Assert.False(counted);
        Assert.Equal("", refused.RunId);
        Assert.DoesNotContain("our-hash", refused.Reason);
        Assert.Equal(0, view.AcceptedCaches);

        var accepted = view.Register(Self, "our-hash", "run-1", "our-hash", out counted);
        Assert.True(accepted.Accepted);
        Assert.Equal("run-1", accepted.RunId);
        Assert.True(counted);
        view.Register(Self, "our-hash", "run-1", "our-hash", out counted);
        Assert.False(counted);
        Assert.Equal(1, view.AcceptedCaches);

        view.Removed(Self);
        Assert.Equal(0, view.AcceptedCaches);
    }
}
