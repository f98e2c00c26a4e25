using Akka.Actor;
using Akka.Cluster;
using DistributedBackprop.Cluster.Contracts;

namespace DistributedBackprop.Cluster.Transport;

/// <summary>
/// One per node (at /user/<see cref="Name"/>): tells every other member where this node's <see cref="DataChannel"/>
/// listens, records what the others tell it, and keeps the channel in step with membership and reachability (no channel
/// sends to an unreachable or removed node).
/// </summary>
public sealed class DataEndpointExchange : ReceiveActor, IWithTimers
{
    public const string Name = "data-channel";

    // Announcements are tiny; repeating them covers one lost while an association was still forming.
    private static readonly TimeSpan AnnounceEvery = TimeSpan.FromSeconds(2);

    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);

    public DataEndpointExchange(DataChannel channel)
    {
        var announcement = new DataEndpoint(channel.Endpoint.Host, channel.Endpoint.Port);
        void Announce(Address member)
        {
            if (member != _cluster.SelfAddress)
            {
                Context.ActorSelection(new RootActorPath(member) / "user" / Name).Tell(announcement, Self);
            }
        }

        Receive<ClusterEvent.MemberUp>(up =>
        {
            channel.Admit(up.Member.Address);
            Announce(up.Member.Address);
        });
        Receive<AnnounceToAll>(_ =>
        {
            foreach (var member in _cluster.State.Members.Where(m => m.Status is MemberStatus.Up or MemberStatus.Leaving))
            {
                Announce(member.Address);
            }
        });
        Receive<ClusterEvent.MemberRemoved>(removed => channel.Forget(removed.Member.Address));
        Receive<ClusterEvent.MemberDowned>(downed => channel.Forget(downed.Member.Address));
        Receive<ClusterEvent.IMemberEvent>(member => channel.Admit(member.Member.Address));
        Receive<ClusterEvent.UnreachableMember>(u => channel.SetReachable(u.Member.Address, reachable: false));
        Receive<ClusterEvent.ReachableMember>(r => channel.SetReachable(r.Member.Address, reachable: true));
        Receive<DataEndpoint>(endpoint =>
        {
            // The sender's own address names the node (not a field it could get wrong); junk is ignored.
            if (endpoint.Port is > 0 and <= 65535 && !string.IsNullOrWhiteSpace(endpoint.Host) && !Sender.IsNobody()
                && Sender.Path.Address != _cluster.SelfAddress)
            {
                channel.Learn(Sender.Path.Address, endpoint.Host, endpoint.Port);
            }
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed class AnnounceToAll
    {
        public static readonly AnnounceToAll Instance = new();
    }

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        Timers.StartPeriodicTimer("announce", AnnounceToAll.Instance, AnnounceEvery);
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);
}
