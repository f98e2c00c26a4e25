using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// How membership changes reach the job: the <see cref="ClusterView"/> is updated, the run folder records the change
/// (and a "cluster" line when the picture changed), the fault log records each worker lost with its node, and the work
/// assignment learns which workers are dead or alive again. It returns the workers lost, whose slices the coordinator
/// re-assigns, and the workers to start (again, or new ones for a node that joined).
/// <para>
/// The worker count follows the nodes: each accepted node brings <paramref name="workersPerNode"/> workers, and the job
/// never has fewer than <paramref name="initialWorkers"/> (--workers). A node that joins mid-run gets new workers at the
/// next step boundary; when a node is removed, its workers start again elsewhere only as far as the job still wants them.
/// </para>
/// </summary>
public sealed class Membership(ClusterView view, WorkAssignment work, FaultLog faults, RunRecorder run,
    int initialWorkers, int workersPerNode, string runId, string configHash, ILoggingAdapter log)
{
    private readonly HashSet<string> _starting = new(StringComparer.Ordinal);
    private bool _elastic;

    public ClusterView View => view;

    /// <summary>How many workers the job wants now: --workers, or more when more nodes than that are accepted.</summary>
    public int Wanted => Math.Min(JobSpec.MaxWorkers, Math.Max(initialWorkers, workersPerNode * view.AcceptedMembers));

    /// <summary>
    /// From now on (the initial workers have all started once), the worker count follows the accepted nodes. Before,
    /// the workers start one at a time so that they spread over the nodes, and nothing else starts any.
    /// </summary>
    public void FollowNodes() => _elastic = true;

    /// <summary>Whether fewer than <see cref="Wanted"/> workers run on members or are starting.</summary>
    public bool WantsMore => _elastic && work.All.Count(Running) < Wanted;

    /// <summary>Alive, starting, or on an unreachable member (which may come back with it).</summary>
    private bool Running(string worker) => _starting.Contains(worker) || !work.IsDead(worker) || view.OnUnreachableMember(worker);

    /// <summary>
    /// The workers to start now so that <see cref="Wanted"/> run on members: first those whose node is gone (lowest id
    /// first), then new ids after the last. Each is asked for once until it starts, or until a node is removed (an order
    /// sent to a dying node is lost). Nothing before <see cref="FollowNodes"/>.
    /// </summary>
    public IReadOnlyList<string> WorkersToStart()
    {
        if (!_elastic)
        {
            return [];
        }
        var running = work.All.Count(Running);
        var start = work.All.Where(w => !Running(w)).Take(Math.Max(0, Wanted - running)).ToList();
        while (running + start.Count < Wanted)
        {
            var worker = Hosting.WorkerMessageExtractor.WorkerId(work.All.Count);
            work.Add(worker);
            start.Add(worker);
        }
        _starting.UnionWith(start);
        return start;
    }

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
    /// A member was removed: the workers on it that were alive until now, and in <paramref name="restart"/> the dead
    /// workers the job still wants (sharding re-homes a lost node's workers; the first message starts them on a live
    /// node). A worker that a departed node brought beyond --workers is not started again.
    /// </summary>
    public IReadOnlyList<string> Removed(Address node, long step, out IReadOnlyList<string> restart)
    {
        var lost = Lost(node, "node-removed", step);
        view.Removed(node);
        _starting.Clear();
        restart = _elastic ? WorkersToStart() : work.All.Where(work.IsDead).ToList();
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
        _starting.Remove(worker);
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
