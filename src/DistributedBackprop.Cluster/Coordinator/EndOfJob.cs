using Akka.Cluster;
using Akka.Event;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>How the coordinator lets the cluster go once the job is over.</summary>
public static class EndOfJob
{
    /// <summary>
    /// After a finished job, how long a member may stay unreachable before the coordinator downs it (see
    /// <see cref="DownStillUnreachable"/>): a node frozen for a moment comes back within it and leaves like the others.
    /// </summary>
    public static readonly TimeSpan DowningGrace = TimeSpan.FromSeconds(1.5);

    /// <summary>
    /// The job is over, so a node that is unreachable now (killed, frozen, cut off) has nothing left to give. Downing it
    /// at once lets the others leave: leaving needs convergence, which an unreachable member blocks until the Split
    /// Brain Resolver downs it (stable-after, ~4 s later) — time every run with a lost node spent doing nothing.
    /// </summary>
    public static void DownUnreachableNodes(Akka.Cluster.Cluster cluster, ILoggingAdapter log)
    {
        foreach (var member in cluster.State.Unreachable.Where(m => m.Status != MemberStatus.Down))
        {
            log.Info("job over: downing unreachable node {0} so that the others can leave", member.Address);
            cluster.Down(member.Address);
        }
    }

    /// <summary>
    /// A node killed shortly before the end of a finished job is not unreachable yet when the job ends, or only just;
    /// its death then holds up everyone's leave until the Split Brain Resolver downs it (stable-after, 4 s later). The
    /// job is over and the node has nothing left to give: the coordinator downs it once it has stayed unreachable for
    /// <see cref="DowningGrace"/> — keep-majority's decision with a shorter wait, so only a side that holds the
    /// majority takes it. (Downing a node that is merely frozen costs more: back, downed and still reachable, it holds
    /// up convergence until it is unreachable again; hence the grace.)
    /// </summary>
    public static void DownStillUnreachable(Akka.Cluster.Cluster cluster, ILoggingAdapter log)
    {
        var state = cluster.State;
        if (HoldsMajority(state.Members.Count, state.Unreachable.Count))
        {
            DownUnreachableNodes(cluster, log);
        }
    }

    /// <summary>Keep-majority's test: the reachable members are more than half of all members.</summary>
    public static bool HoldsMajority(int members, int unreachable) => 2 * (members - unreachable) > members;
}
