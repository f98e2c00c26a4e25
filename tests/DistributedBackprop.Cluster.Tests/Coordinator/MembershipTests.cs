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
        _membership = new Membership(new ClusterView(Self), _work, _faults, RunRecorder.None, Workers.Length, 1, "run-1", "hash-a", NoLogger.Instance);
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

    // ---- the worker count follows the nodes: one worker per node, --workers 2 ----

    private static readonly Address Third = new("akka.tcp", "distbp", "10.0.0.3", 4053);

    private static (Membership Membership, WorkAssignment Work) TwoNodesOneWorkerEach()
    {
        var work = new WorkAssignment(8, ["worker-0", "worker-1"]);
        var membership = new Membership(new ClusterView(Self), work, new FaultLog(), RunRecorder.None, 2, 1, "run-1", "hash-a",
            NoLogger.Instance);
        foreach (var node in new[] { Self, Other })
        {
            membership.View.MemberUp(node);
            membership.Register(node, "hash-a", out _);
        }
        membership.WorkerStarted("worker-0", Self, 0);
        membership.WorkerStarted("worker-1", Other, 0);
        membership.FollowNodes();
        return (membership, work);
    }

    private static void ThirdJoinsWithWorker2(Membership membership)
    {
        membership.View.MemberUp(Third);
        membership.Register(Third, "hash-a", out _);
        Assert.Equal(["worker-2"], membership.WorkersToStart());
        membership.WorkerStarted("worker-2", Third, 40);
    }

    [Fact]
    public void A_node_that_joins_mid_run_brings_a_new_worker_that_gets_work_once_it_started()
    {
        var (membership, work) = TwoNodesOneWorkerEach();
        Assert.Empty(membership.WorkersToStart());

        membership.View.MemberUp(Third);
        membership.Register(Third, "hash-a", out _);
        Assert.Equal(3, membership.Wanted);
        Assert.Equal(["worker-2"], membership.WorkersToStart());
        Assert.Empty(membership.WorkersToStart()); // asked once
        Assert.DoesNotContain("worker-2", work.Alive); // not before it says it started

        membership.WorkerStarted("worker-2", Third, 40);
        Assert.Equal(["worker-0", "worker-1", "worker-2"], work.Alive);
        Assert.Equal(3, work.BeginStep(DateTime.UtcNow).Count);
    }

    [Fact]
    public void A_refused_node_brings_no_workers()
    {
        var (membership, _) = TwoNodesOneWorkerEach();
        membership.View.MemberUp(Third);
        membership.Register(Third, "hash-b", out _);
        Assert.Empty(membership.WorkersToStart());
    }

    [Fact]
    public void A_node_that_joined_and_left_takes_its_worker_away_but_the_job_keeps_its_workers_count()
    {
        var (membership, work) = TwoNodesOneWorkerEach();
        ThirdJoinsWithWorker2(membership);

        // The joined node leaves: its worker is lost and not started elsewhere.
        membership.Unreachable(Third, 50);
        Assert.Empty(membership.Removed(Third, 51, out var restart));
        Assert.Empty(restart);
        Assert.Equal(["worker-0", "worker-1"], work.Alive);

        // One of the first two leaves: the job never goes below --workers, so its worker starts on the other.
        Assert.Equal(["worker-1"], membership.Removed(Other, 60, out restart));
        Assert.Equal(["worker-1"], restart);
    }

    [Fact]
    public void A_restarted_node_gets_back_the_worker_its_old_incarnation_had()
    {
        var (membership, work) = TwoNodesOneWorkerEach();
        ThirdJoinsWithWorker2(membership);
        membership.Removed(Third, 50, out _);

        membership.View.MemberUp(Third);
        membership.Register(Third, "hash-a", out _);
        Assert.Equal(["worker-2"], membership.WorkersToStart()); // its id again, not a new one
        Assert.Equal(3, work.All.Count);
    }

    [Fact]
    public void Before_the_initial_workers_started_no_worker_is_started_for_a_joining_node()
    {
        var work = new WorkAssignment(8, ["worker-0", "worker-1"]);
        var membership = new Membership(new ClusterView(Self), work, new FaultLog(), RunRecorder.None, 2, 1, "run-1", "hash-a",
            NoLogger.Instance);
        foreach (var node in new[] { Self, Other, Third })
        {
            membership.View.MemberUp(node);
            membership.Register(node, "hash-a", out _);
        }
        Assert.Empty(membership.WorkersToStart());
    }
}
