using Akka.Actor;
using Akka.Event;
using DistributedBackprop.Cluster.Coordinator;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

public sealed class MembershipTests
{
    private static readonly Address Self = new("akka.tcp", "distbp", "10.0.0.1", 4053);
    private static readonly Address Other = new("akka.tcp", "distbp", "10.0.0.2", 4053);
    private static readonly string[] Workers = ["worker-0", "worker-1", "worker-2"];

    private readonly WorkAssignment _work = new(8, Workers);
    private readonly FaultLog _faults = new();
    private readonly Membership _membership;

    public MembershipTests()
    {
        _membership = new Membership(new ClusterView(Self), _work, _faults, RunRecorder.None, Workers, "run-1", "hash-a", NoLogger.Instance);
        _membership.View.MemberUp(Self);
        _membership.View.MemberUp(Other);
        _membership.WorkerStarted("worker-0", Self, 0);
        _membership.WorkerStarted("worker-1", Other, 0);
        _membership.WorkerStarted("worker-2", Other, 0);
    }

    [Fact]
    public void An_unreachable_node_loses_its_live_workers_once_each_with_a_fault_naming_the_node()
    {
        Assert.Equal(["worker-1", "worker-2"], _membership.Unreachable(Other, 7));
        Assert.Equal(["worker-0"], _work.Alive);
        Assert.Equal(["worker-1@" + Other, "worker-2@" + Other], _faults.Records.Select(f => f.Subject));
        Assert.All(_faults.Records, f => Assert.Equal(("node-unreachable", 7L), (f.Kind, f.Step)));
        // Removed later: nothing is lost twice, and the dead workers are to be started again elsewhere.
        Assert.Empty(_membership.Removed(Other, 9, out var restart));
        Assert.Equal(["worker-1", "worker-2"], restart);
        Assert.Equal(2, _faults.Records.Count);
        Assert.DoesNotContain(Other, _membership.View.Members);
    }

    [Fact]
    public void A_node_reachable_again_gets_its_workers_back()
    {
        _membership.Unreachable(Other, 3);
        _membership.Reachable(Other, 4);
        Assert.Equal(Workers, _work.Alive);
    }

    [Fact]
    public void A_worker_that_started_on_an_unreachable_node_gets_no_work_until_the_node_is_back()
    {
        _membership.Unreachable(Other, 3);
        _membership.WorkerStarted("worker-1", Other, 3);
        Assert.DoesNotContain("worker-1", _work.Alive);
        // Re-homed on a usable node, it works again.
        _membership.WorkerStarted("worker-1", Self, 3);
        Assert.Contains("worker-1", _work.Alive);
    }

    [Fact]
    public void The_coordinators_own_node_loses_no_workers()
    {
        Assert.Empty(_membership.Unreachable(Self, 1));
        Assert.Empty(_faults.Records);
    }
}
