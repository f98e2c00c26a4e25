using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// How membership changes reach the job: the <see cref="ClusterView"/> is updated, the run folder records the change
/// (and a "cluster" line when the picture changed), the fault log records each worker lost with its node, and the work
/// assignment learns which workers are dead or alive again. It returns the workers lost, whose slices the coordinator
/// re-assigns, and the dead workers to start again elsewhere.
/// </summary>
public sealed class Membership(ClusterView view, WorkAssignment work, FaultLog faults, RunRecorder run,
    IReadOnlyList<string> workerIds, string runId, string configHash, ILoggingAdapter log)
{
    public ClusterView View => view;

    /// <summary>
    /// A member's registration, from its node agent: accepted when it was started with the coordinator's options
    /// (<paramref name="newlyAccepted"/> the first time); a refusal is logged.
    /// </summary>
    public NodeVerdict Register(Address node, string nodeHash, out bool newlyAccepted)
    {
        var verdict = view.Register(node, nodeHash, runId, configHash, out newlyAccepted);
        if (!verdict.Accepted)
        {
            log.Warning("refused node {0}: its configuration hash {1} differs from the coordinator's {2}", node, nodeHash, configHash);
        }
        return verdict;
    }

    public void Up(Member member, long step)
    {
        view.MemberUp(member.Address);
        run.MemberUp(member, step);
        Snapshot(step);
    }

    /// <summary>A member became unreachable: the workers on it that were alive until now.</summary>
    public IReadOnlyList<string> Unreachable(Address node, long step)
    {
        run.Reachability(node, reachable: false, step);
        var lost = Lost(node, "node-unreachable", step);
        Snapshot(step);
        return lost;
    }

    /// <summary>A member is reachable again: the workers on it may be given work again.</summary>
    public void Reachable(Address node, long step)
    {
        foreach (var worker in view.Reachable(node))
        {
            work.MarkAlive(worker);
        }
        run.Reachability(node, reachable: true, step);
        Snapshot(step);
    }

    /// <summary>
    /// A member was removed: the workers on it that were alive until now, and in <paramref name="restart"/> every dead
    /// worker (sharding re-homes a lost node's workers; the first message starts them on a live node).
    /// </summary>
    public IReadOnlyList<string> Removed(Address node, long step, out IReadOnlyList<string> restart)
    {
        var lost = Lost(node, "node-removed", step);
        view.Removed(node);
        restart = workerIds.Where(work.IsDead).ToList();
        run.MemberRemoved(node, step);
        Snapshot(step);
        return lost;
    }

    /// <summary>
    /// A worker said it started, from <paramref name="node"/> (where its answer came from, not what the message says);
    /// on a usable member it may be given work.
    /// </summary>
    public void WorkerStarted(string worker, Address node, long step)
    {
        view.Place(worker, node.ToString());
        if (view.IsUsable(node))
        {
            work.MarkAlive(worker);
        }
        Snapshot(step);
    }

    /// <summary>A "cluster" line in the run folder's events when the nodes or the live workers changed.</summary>
    public void Snapshot(long step) =>
        run.Snapshot(step, view.Members, view.Unreachable, view.Placement, work.Alive, view.Self);

    private List<string> Lost(Address node, string kind, long step)
    {
        var lost = new List<string>();
        foreach (var worker in view.Lost(node))
        {
            if (work.MarkDead(worker))
            {
                faults.Add(kind, step, $"{worker}@{node}", "its slices went to live workers", worker, node.ToString());
                lost.Add(worker);
            }
        }
        return lost;
    }
}
