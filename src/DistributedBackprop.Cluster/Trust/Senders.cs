using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Telemetry;
using DistributedBackprop.Cluster.Transport;

namespace DistributedBackprop.Cluster.Trust;

/// <summary>
/// Who may send a message, judged by the actor Akka (or the data channel, after its handshake) says sent it — never by a
/// field inside the message. A message from anyone else is dropped, logged (at most once a second per rule) and counted
/// (<c>distbp_peer_refusals_total{reason="wrong-sender"}</c>).
/// </summary>
public static class Senders
{
    private static readonly RefusalLog Log = new();

    /// <summary>The node <paramref name="actor"/> lives on: its path's address, or this node's for a local path.</summary>
    public static Address NodeOf(IActorRef actor, ActorSystem system) =>
        actor.Path.Address.HasLocalScope ? SelfAddress(system) : actor.Path.Address;

    /// <summary>True for an actor of this process or of a node that is a member now (not downed or removed).</summary>
    public static bool IsLocalOrMember(IActorRef sender, ActorSystem system)
    {
        if (sender.IsNobody())
        {
            return false;
        }
        var node = NodeOf(sender, system);
        if (node == SelfAddress(system))
        {
            return true;
        }
        return ((ExtendedActorSystem)system).Provider is IClusterActorRefProvider
               && Akka.Cluster.Cluster.Get(system).State.Members.Any(m =>
                   m.Address == node && m.Status is not (MemberStatus.Down or MemberStatus.Removed));
    }

    /// <summary>
    /// True when <paramref name="sender"/> is of this process or a member; otherwise drops <paramref name="message"/>
    /// (<see cref="Drop"/>) and says false.
    /// </summary>
    public static bool FromMember(IActorRef sender, ActorSystem system, ILoggingAdapter log, object message)
    {
        if (IsLocalOrMember(sender, system))
        {
            return true;
        }
        Drop(log, message, sender, "not from a member of the cluster");
        return false;
    }

    /// <summary>
    /// A worker's message is believed only from that worker: the sending actor is named by the worker id (a sharding
    /// entity's name is its id) and lives on a member. A wrong one is dropped (<see cref="Drop"/>) and false is said.
    /// </summary>
    public static bool FromWorker(IActorRef sender, ActorSystem system, ILoggingAdapter log, object message, string workerId)
    {
        if (sender.Path.Name == workerId && IsLocalOrMember(sender, system))
        {
            return true;
        }
        Drop(log, message, sender, $"only worker {workerId} on a member node may send it");
        return false;
    }

    /// <summary>The coordinator singleton's path under its node (the manager and the singleton are both "coordinator").</summary>
    private static readonly string[] CoordinatorPath = ["user", "coordinator", "coordinator"];

    /// <summary>
    /// True when <paramref name="sender"/> is of this process, or is the coordinator singleton on a member; otherwise drops
    /// <paramref name="message"/> and says false. What only the coordinator sends — jobs, weights, the normaliser,
    /// verdicts, the end — is believed from no other actor of another node.
    /// </summary>
    public static bool FromCoordinator(IActorRef sender, ActorSystem system, ILoggingAdapter log, object message) =>
        FromLocalOrAt(CoordinatorPath, sender, system, log, message, "only the coordinator may send it");

    /// <summary>A range owner's path under its node.</summary>
    private static readonly string[] OwnerPath = ["user", "range-owner"];

    /// <summary>
    /// True when <paramref name="sender"/> is of this process, or is a node's range owner on a member; otherwise drops
    /// <paramref name="message"/> and says false. Ranges of weights are believed from no other actor of another node.
    /// </summary>
    public static bool FromOwner(IActorRef sender, ActorSystem system, ILoggingAdapter log, object message) =>
        FromLocalOrAt(OwnerPath, sender, system, log, message, "only a range owner may send it");

    /// <summary>True for an actor of this process, or one at <paramref name="path"/> on a member; else the message is dropped.</summary>
    private static bool FromLocalOrAt(string[] path, IActorRef sender, ActorSystem system, ILoggingAdapter log, object message,
        string rule)
    {
        if (!sender.IsNobody() && (NodeOf(sender, system) == SelfAddress(system)
                                   || (sender.Path.Elements.SequenceEqual(path) && IsLocalOrMember(sender, system))))
        {
            return true;
        }
        Drop(log, message, sender, rule);
        return false;
    }

    /// <summary>
    /// Feeds a member's chunk to <paramref name="assembler"/>: the reassembled message once complete, else null. A chunk
    /// the assembler refuses (or a stranger's) is dropped and counted; it never throws into the actor.
    /// </summary>
    public static IWireMessage? Reassemble(ChunkAssembler assembler, IActorRef sender, ActorSystem system, ILoggingAdapter log,
        TensorChunk chunk)
    {
        if (!FromMember(sender, system, log, chunk))
        {
            return null;
        }
        var outcome = assembler.Accept(sender, chunk);
        if (outcome.Status == ChunkStatus.Rejected)
        {
            Drop(log, chunk, sender, outcome.Reason!);
        }
        return outcome.Message;
    }

    /// <summary>Drops <paramref name="message"/>: one warning naming the sender and the rule, and the refusal counted.</summary>
    public static void Drop(ILoggingAdapter log, object message, IActorRef sender, string rule)
    {
        var from = sender.IsNobody() ? "no sender" : sender.Path.ToString();
        Log.Warn(log, message.GetType().Name, $"dropped a {message.GetType().Name} from {from}: {rule}");
        TrainingMetrics.PeerRefused("wrong-sender");
    }

    private static Address SelfAddress(ActorSystem system) => ((ExtendedActorSystem)system).Provider.DefaultAddress;
}
