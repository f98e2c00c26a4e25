using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;

namespace DistributedBackprop.Cluster.Transport;

/// <summary>Where a node's data channel listens and how much it queues per peer.</summary>
public sealed record DataChannelSettings
{
    /// <summary>The address the listener binds (0.0.0.0 for all); peers are told the remoting address's host.</summary>
    public string BindHostname { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port; compose and Kubernetes fix it so it can be exposed.</summary>
    public int Port { get; init; }
    /// <summary>Frames waiting per peer; a send beyond that takes the Akka path instead (never blocks the sender).</summary>
    public int QueuedFramesPerPeer { get; init; } = 32;
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>After a failed connection, sends to that peer take the Akka path for this long before a new try.</summary>
    public TimeSpan RetryAfter { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The cluster secret every connection proves (<see cref="DataChannelHandshake"/>); null: unauthenticated.</summary>
    public byte[]? Secret { get; init; }
    /// <summary>When set, every connection runs over TLS with this certificate, both ways (mutual), validated as Akka
    /// remoting validates its own: against the trust store, without a hostname check.</summary>
    public X509Certificate2? Certificate { get; init; }
    /// <summary>Roots to trust instead of the system's store (its own, or SSL_CERT_FILE's); null: the system's.</summary>
    public X509Certificate2Collection? TrustBundle { get; init; }
    /// <summary>Largest frame body accepted: set from the job's largest tensor (<see cref="DataFrames.FrameLimitFor"/>).</summary>
    public int MaxFrameBytes { get; init; } = DataFrames.MaxFrameBytes;
    /// <summary>An inbound connection that has not completed its handshake by then is closed.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>A frame whose body stops arriving for this long closes its connection (a peer may idle between frames).</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Inbound connections from one node at once (one is the norm; a reconnect may overlap the old one).</summary>
    public int MaxConnectionsPerPeer { get; init; } = 4;
    /// <summary>Inbound connections at once, handshakes included: a flood of sockets costs at most this many.</summary>
    public int MaxConnections { get; init; } = 64;
}

/// <summary>Why the data channel refused a connection or a frame (each counted; logged at most once a second per reason).</summary>
public enum PeerRefusal
{
    /// <summary>No valid hello, no proof of the cluster secret, or a failed TLS handshake.</summary>
    Unauthenticated,
    /// <summary>The handshake did not complete in time.</summary>
    HandshakeTimeout,
    /// <summary>An authenticated node that is not a current member of the cluster.</summary>
    NotMember,
    /// <summary>Over the connection cap, per peer or in all.</summary>
    TooManyConnections,
    /// <summary>A length prefix past the job's frame limit.</summary>
    OversizedFrame,
    /// <summary>A frame body that stopped arriving.</summary>
    ReadTimeout,
    /// <summary>A frame that breaks the format, or a payload that does not deserialize.</summary>
    MalformedFrame,
    /// <summary>A frame whose sender is not on the node the connection authenticated, or whose target is not here.</summary>
    ForgedSender,
}

/// <summary>
/// A dedicated TCP channel for large messages (docs/ARCHITECTURE.md, Wire). Akka.Remote
/// moves multi-MB messages at ~0.25 GB/s over the association its heartbeats share; a plain socket does ~2 GB/s.
/// One outbound connection per peer node carries frames in send order, written by a task from a bounded queue, so a
/// sender never blocks; each inbound connection has its own read loop that hands each message to its target actor as
/// if told by the original sender. Per sender→receiver order holds because one node pair has one connection per
/// direction.
/// </summary>
/// <remarks>
/// Whenever the channel cannot take a message (peer's endpoint unknown, peer unreachable or cut off, connection broken,
/// queue full) <see cref="TrySend"/> says no and the caller uses the Akka path; frames still queued on a connection that
/// breaks are re-sent over Akka, so the channel never loses what Akka would have delivered. A partition (chaos) cuts
/// the channel as well as the Akka associations (<see cref="Cut"/>): frames are then neither sent nor accepted, as
/// Akka's throttler blackholes them.
/// Trust: every inbound connection must complete <see cref="DataChannelHandshake"/> (proof of the cluster secret) within
/// <see cref="DataChannelSettings.HandshakeTimeout"/>, over TLS when a certificate is set, and come from a current member
/// (<see cref="Admit"/>); a frame's sender must be an actor of that node. Every buffer a peer can make this node hold is
/// bounded: the frame limit comes from the job, the body buffer grows as bytes arrive, connections are capped.
/// The receiving side (accepting, authenticating, reading, delivering) is in DataChannel.Inbound.cs, the sending side
/// (per-peer queues and connections, the fallback to Akka) in DataChannel.Outbound.cs.
/// </remarks>
public sealed partial class DataChannel : IExtension, IDisposable
{
    private readonly ExtendedActorSystem _system;
    private readonly DataChannelSettings _settings;
    private readonly WireSerializer _serializer;
    private readonly TensorTransport _akkaPath;
    private readonly ILoggingAdapter _log;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<Address, Peer> _peers = new();
    // Cut peers and when each cut ends by itself (Environment.TickCount64; long.MaxValue: until restored).
    private readonly ConcurrentDictionary<Address, long> _cut = new();
    private readonly ConcurrentDictionary<Socket, byte> _inbound = new();
    // Current members (fed by DataEndpointExchange): the only nodes whose connections are accepted.
    private readonly ConcurrentDictionary<Address, byte> _members = new();
    private readonly ConcurrentDictionary<Address, int> _connectionsPerPeer = new();
    private readonly long[] _refusals = new long[Enum.GetValues<PeerRefusal>().Length];
    private readonly Trust.RefusalLog _refusalLog = new();
    private readonly ConcurrentDictionary<string, IActorRef> _targets = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Type, int> _frameSizes = new();
    private readonly string _selfAddress;

    private DataChannel(ExtendedActorSystem system, DataChannelSettings settings)
    {
        _system = system;
        _settings = settings;
        _serializer = TensorTransport.SerializerOf(system);
        _akkaPath = new TensorTransport(_serializer);
        _log = Logging.GetLogger(system, typeof(DataChannel));
        _selfAddress = system.Provider.DefaultAddress.ToString();
        _listener = new TcpListener(BindAddress(settings.BindHostname), settings.Port);
        _listener.Server.NoDelay = true;
        _listener.Start();
        var port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        Endpoint = new DnsEndPoint(system.Provider.DefaultAddress.Host ?? settings.BindHostname, port);
        _ = Task.Run(AcceptLoop);
        system.RegisterOnTermination(Dispose);
    }

    /// <summary>Starts this system's channel (its listener binds now); once per system.</summary>
    public static DataChannel Start(ActorSystem system, DataChannelSettings settings) =>
        (DataChannel)((ExtendedActorSystem)system).RegisterExtension(new Id(settings));

    /// <summary>The system's channel, or null when it runs without one (Akka path only).</summary>
    public static DataChannel? For(ActorSystem system) =>
        system.HasExtension<DataChannel>() ? system.GetExtension<DataChannel>() : null;

    /// <summary>The host and port peers connect to (the remoting host, the listener's port).</summary>
    public DnsEndPoint Endpoint { get; }

    /// <summary>Frames delivered to actors of this node since start (tests and diagnostics).</summary>
    public long FramesDelivered => Interlocked.Read(ref _framesDelivered);

    /// <summary>Frames this node handed to a connection since start.</summary>
    public long FramesSent => Interlocked.Read(ref _framesSent);

    /// <summary>Inbound connections this node refused or closed, for any reason.</summary>
    public long ConnectionsRejected => Enum.GetValues<PeerRefusal>().Sum(Refusals);

    /// <summary>Inbound connections refused or closed for <paramref name="reason"/>.</summary>
    public long Refusals(PeerRefusal reason) => Interlocked.Read(ref _refusals[(int)reason]);

    private long _framesDelivered;
    private long _framesSent;

    /// <summary><paramref name="node"/> is a member: its connections are accepted (once it proves the secret).</summary>
    public void Admit(Address node) => _members[node] = 0;

    /// <summary>The node at <paramref name="node"/> listens for data at <paramref name="host"/>:<paramref name="port"/>.</summary>
    public void Learn(Address node, string host, int port)
    {
        var peer = _peers.GetOrAdd(node, a => new Peer(a));
        peer.Learn(new DnsEndPoint(host, port));
    }

    /// <summary>The node left the cluster: close its connection, forget its endpoint, accept no more from it.</summary>
    public void Forget(Address node)
    {
        _members.TryRemove(node, out _);
        if (_peers.TryRemove(node, out var peer))
        {
            peer.Close();
        }
    }

    /// <summary>Follows the cluster's failure detector: no channel sends to an unreachable node (Akka decides there).</summary>
    public void SetReachable(Address node, bool reachable)
    {
        var peer = _peers.GetOrAdd(node, a => new Peer(a));
        peer.Unreachable = !reachable;
        if (!reachable)
        {
            peer.Close();
        }
    }

    /// <summary>
    /// Partition (chaos): no frame goes to or is accepted from these nodes until <see cref="Restore"/>, or until
    /// <paramref name="duration"/> has passed (so a heal that never comes cannot cut the channel for good).
    /// </summary>
    public void Cut(IEnumerable<Address> nodes, TimeSpan? duration = null)
    {
        var until = duration is { } d ? Environment.TickCount64 + (long)d.TotalMilliseconds : long.MaxValue;
        foreach (var node in nodes)
        {
            _cut[node] = until;
            if (_peers.TryGetValue(node, out var peer))
            {
                peer.Close();
            }
        }
    }

    /// <summary>Heals a <see cref="Cut"/>.</summary>
    public void Restore(IEnumerable<Address> nodes)
    {
        foreach (var node in nodes)
        {
            _cut.TryRemove(node, out _);
        }
    }

    /// <summary>
    /// Queues <paramref name="message"/> for <paramref name="target"/>'s node, to be told to it as from
    /// <paramref name="sender"/>. False when the channel cannot take it now: send it over Akka instead.
    /// The message is serialized before this returns, so its arrays may be reused right after.
    /// </summary>
    public bool TrySend(IActorRef target, IWireMessage message, IActorRef? sender)
    {
        var node = target.Path.Address;
        if (_stop.IsCancellationRequested || IsCut(node) || !_peers.TryGetValue(node, out var peer))
        {
            return false;
        }
        var connection = peer.Usable(this);
        if (connection is null)
        {
            return false;
        }
        var type = message.GetType();
        // A local sender's path has no host: give it this node's remoting address, as Akka.Remote does.
        var self = _system.Provider.DefaultAddress;
        var frame = DataFrames.Encode(target.Path.ToSerializationFormat(),
            sender is null || sender.IsNobody() ? "" : sender.Path.ToSerializationFormatWithAddress(self),
            _serializer.Manifest(message), message, _frameSizes.GetValueOrDefault(type));
        _frameSizes[type] = frame.Length + 64;
        if (connection.TryEnqueue(new Queued(frame, target, sender)))
        {
            return true;
        }
        frame.Release();
        return false;
    }

    public void Dispose()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }
        _stop.Cancel();
        _listener.Stop();
        foreach (var peer in _peers.Values)
        {
            peer.Close();
        }
        foreach (var socket in _inbound.Keys)
        {
            socket.Dispose();
        }
    }

    private bool IsCut(Address node)
    {
        if (!_cut.TryGetValue(node, out var until))
        {
            return false;
        }
        if (Environment.TickCount64 < until)
        {
            return true;
        }
        _cut.TryRemove(KeyValuePair.Create(node, until));
        return false;
    }

    private static IPAddress BindAddress(string hostname) =>
        IPAddress.TryParse(hostname, out var ip) ? ip
        : Dns.GetHostAddresses(hostname).OrderBy(a => a.AddressFamily == AddressFamily.InterNetwork ? 0 : 1).First();

    private sealed class Id(DataChannelSettings settings) : ExtensionIdProvider<DataChannel>
    {
        public override DataChannel CreateExtension(ExtendedActorSystem system) => new(system, settings);
    }
}
