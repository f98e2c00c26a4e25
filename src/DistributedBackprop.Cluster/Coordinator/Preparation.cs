using Akka.Actor;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Core.Data;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// What happens before the first step, stage by stage: wait until enough accepted nodes are up and every node's shard
/// region is known (so the workers spread over all the nodes), start the workers one at a time, have them compute the
/// feature statistics, and send the merged normaliser to every node's cache, whose node then builds its setup. Each
/// method says whether the stage moved on; the actor starts a new wait then (<see cref="Nudge"/> re-sends what the
/// stage is missing).
/// </summary>
public sealed class Preparation(JobSpec spec, IReadOnlyList<string> workerIds, ClusterView view, Membership membership,
    WorkAssignment work, CoordinatorOutbox outbox, IActorRef localCache, bool resuming)
{
    public enum Stage { WaitingForMembers, StartingWorkers, Statistics, Setup }

    private int _next;
    private StatisticsRound? _statistics;

    public Stage Current { get; private set; } = Stage.WaitingForMembers;

    /// <summary>
    /// Enough accepted nodes to start: --min-nodes, or any one when the run resumes (a checkpoint exists, or this
    /// coordinator took over from another: it goes on with the nodes it has). A refused node (other options) is a member with a cache, but does not count.
    /// </summary>
    public bool EnoughNodes => Current == Stage.WaitingForMembers && view.AcceptedCaches >= (resuming ? 1 : spec.Outputs.MinNodes);

    /// <summary>
    /// The shard regions known: true when there is one per node wanted, and the first worker was asked to start. A
    /// resuming coordinator wants the accepted nodes' regions only: waiting for --min-nodes there kept a hand-over
    /// waiting ~10 s for a killed node to restart and rejoin (its workers start on the others, and it gets its own
    /// when it is back, if the job wants more than --workers).
    /// </summary>
    public bool RegionsKnown(int regions)
    {
        var wanted = resuming ? Math.Max(1, view.AcceptedCaches) : spec.Outputs.MinNodes;
        if (Current != Stage.WaitingForMembers || regions < wanted)
        {
            return false;
        }
        Current = Stage.StartingWorkers;
        outbox.StartWorker(workerIds[_next]);
        return true;
    }

    /// <summary>
    /// Shard allocations made concurrently all see the same (empty) allocation table and land on one node; started one
    /// after the other, the least-shards strategy spreads the workers over the nodes. True when the last one started
    /// and the statistics were asked for.
    /// </summary>
    public bool WorkerStarted(WorkerStarted started)
    {
        if (Current != Stage.StartingWorkers || started.WorkerId != workerIds[_next])
        {
            return false;
        }
        view.Place(started.WorkerId, started.NodeAddress);
        membership.Snapshot(0);
        if (++_next < workerIds.Count)
        {
            outbox.StartWorker(workerIds[_next]);
            return false;
        }
        Current = Stage.Statistics;
        membership.FollowNodes();
        _statistics = new StatisticsRound(spec.RawData.Train);
        Nudge();
        return true;
    }

    /// <summary>True for the statistics of a chunk that is awaited now.</summary>
    public bool AwaitsStatistics(int chunk) => Current == Stage.Statistics && _statistics!.IsAwaited(chunk);

    /// <summary>False when the statistics of an awaited chunk have another shape than the chunk's (dropped).</summary>
    public bool HasShape(StatisticsResult result) =>
        _statistics!.HasShape(result.Chunk, result.Count, result.Mean.Length, result.M2.Length);

    /// <summary>Takes an awaited chunk's statistics; the normaliser once it was the last, sent to every node's cache.</summary>
    public FeatureNormaliser? Statistics(StatisticsResult result)
    {
        if (_statistics!.Add(result.Chunk, new FeatureStatistics(result.Count, result.Mean, result.M2)) is not { } normaliser)
        {
            return null;
        }
        Current = Stage.Setup;
        Normaliser = normaliser;
        foreach (var cache in view.Caches.Values.Append(localCache).Distinct())
        {
            outbox.Normaliser(cache, normaliser);
        }
        return normaliser;
    }

    /// <summary>The merged normaliser, once the statistics are in.</summary>
    public FeatureNormaliser? Normaliser { get; private set; }

    /// <summary>What the current stage waits for, for the message when the wait gives up.</summary>
    public string Waiting => Current switch
    {
        Stage.StartingWorkers => "starting the workers",
        Stage.Statistics => "feature statistics",
        Stage.Setup => "this node's setup",
        _ => "members",
    };

    /// <summary>Sends again what the current stage is missing.</summary>
    public void Nudge()
    {
        switch (Current)
        {
            case Stage.StartingWorkers:
                outbox.StartWorker(workerIds[_next]);
                break;
            case Stage.Statistics:
                outbox.Statistics(work.Spread(_statistics!.Missing), _statistics.ChunkRows);
                break;
            case Stage.Setup:
                outbox.Normaliser(localCache, Normaliser!);
                break;
        }
    }
}
