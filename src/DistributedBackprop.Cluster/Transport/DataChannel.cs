using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.Serialization;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Threading.Channels;
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
/// </remarks>
public sealed class DataChannel : IExtension, IDisposable
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

    // ---- receiving ----

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested)
                {
                    return;
                }
                continue;
            }
            if (_inbound.Count >= _settings.MaxConnections)
            {
                Refuse(PeerRefusal.TooManyConnections, socket.RemoteEndPoint?.ToString() ?? "?",
                    $"{_settings.MaxConnections} connections are open already");
                socket.Dispose();
                continue;
            }
            socket.NoDelay = true;
            _inbound[socket] = 0;
            _ = Task.Run(() => ReadLoop(socket));
        }
    }

    /// <summary>A connection or frame refused for <see cref="Reason"/>; the connection is closed.</summary>
    private sealed class RefusedException(PeerRefusal reason, string message) : Exception(message)
    {
        public PeerRefusal Reason { get; } = reason;
    }

    private void Refuse(PeerRefusal reason, string from, string why)
    {
        Interlocked.Increment(ref _refusals[(int)reason]);
        Telemetry.TrainingMetrics.PeerRefused(reason);
        _refusalLog.Warn(_log, reason.ToString(), $"data channel: refused {from} ({reason}): {why}");
    }

    /// <summary>
    /// Authenticates one inbound connection, then reads it frame by frame, in order, until it closes, breaks the
    /// format or its bounds, or this node stops.
    /// </summary>
    private async Task ReadLoop(Socket socket)
    {
        var from = socket.RemoteEndPoint?.ToString() ?? "?";
        Address? node = null;
        Stream? stream = null;
        try
        {
            // The socket is closed in finally, after the refusal is counted and logged (tests wait on the close).
            stream = new NetworkStream(socket, ownsSocket: false);
            (node, stream) = await Authenticate(stream, from);
            from = $"{node} ({from})";
            if (_connectionsPerPeer.AddOrUpdate(node, 1, (_, n) => n + 1) > _settings.MaxConnectionsPerPeer)
            {
                throw new RefusedException(PeerRefusal.TooManyConnections,
                    $"{_settings.MaxConnectionsPerPeer} connections from this node are open already");
            }
            var prefix = new byte[sizeof(int)];
            while (true)
            {
                await stream.ReadExactlyAsync(prefix, _stop.Token); // a member may idle between frames
                var length = DataFrames.BodyLength(prefix, _settings.MaxFrameBytes);
                var body = await ReadBody(stream, length);
                try
                {
                    if (!IsCut(node))
                    {
                        Deliver(node, DataFrames.Parse(body.AsMemory(0, length)));
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(body);
                }
            }
        }
        catch (RefusedException e)
        {
            Refuse(e.Reason, from, e.Message);
        }
        catch (OversizedFrameException e)
        {
            Refuse(PeerRefusal.OversizedFrame, from, e.Message);
        }
        catch (Exception e) when (e is MalformedFrameException or SerializationException)
        {
            Refuse(PeerRefusal.MalformedFrame, from, e.Message);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or SocketException or OperationCanceledException
                                      or ObjectDisposedException)
        {
            // The peer closed or broke the connection, or this node is stopping: nothing was half-delivered.
        }
        finally
        {
            if (node is not null)
            {
                _connectionsPerPeer.AddOrUpdate(node, 0, (_, n) => n - 1);
            }
            _inbound.TryRemove(socket, out _);
            if (stream is not null)
            {
                await stream.DisposeAsync();
            }
            socket.Dispose();
        }
    }

    /// <summary>TLS (when configured), then the secret's handshake, within the handshake timeout; then membership.</summary>
    private async Task<(Address Node, Stream Stream)> Authenticate(Stream stream, string from)
    {
        string nodeText;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
        {
            timeout.CancelAfter(_settings.HandshakeTimeout);
            try
            {
                if (_settings.Certificate is { } certificate)
                {
                    var tls = new SslStream(stream, leaveInnerStreamOpen: false);
                    stream = tls;
                    await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                    {
                        ServerCertificate = certificate,
                        ClientCertificateRequired = true,
                        RemoteCertificateValidationCallback = IsTrusted,
                    }, timeout.Token);
                }
                nodeText = await DataChannelHandshake.ServerAsync(stream, _selfAddress, _settings.Secret, timeout.Token);
            }
            catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
            {
                await stream.DisposeAsync();
                throw new RefusedException(PeerRefusal.HandshakeTimeout, $"no handshake within {_settings.HandshakeTimeout}");
            }
            catch (Exception e) when (e is HandshakeRefusedException or AuthenticationException or EndOfStreamException
                                          or IOException)
            {
                await stream.DisposeAsync();
                throw new RefusedException(PeerRefusal.Unauthenticated, e.Message);
            }
            catch
            {
                await stream.DisposeAsync();
                throw;
            }
        }
        if (!ActorPath.TryParseAddress(nodeText, out var node) || !_members.ContainsKey(node))
        {
            await stream.DisposeAsync();
            throw new RefusedException(PeerRefusal.NotMember, $"'{nodeText}' is not a member of this cluster");
        }
        return (node, stream);
    }

    /// <summary>
    /// The peer's certificate is accepted as Akka remoting accepts one (<c>suppress-validation = false</c>, no hostname
    /// check): it must chain to the trust store (the system's, or SSL_CERT_FILE's, or <see cref="DataChannelSettings.TrustBundle"/>)
    /// and be valid now. A peer without a certificate is refused.
    /// </summary>
    private bool IsTrusted(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null)
        {
            return false;
        }
        if (_settings.TrustBundle is not { } roots)
        {
            return (errors & ~SslPolicyErrors.RemoteCertificateNameMismatch) == SslPolicyErrors.None;
        }
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(roots);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return custom.Build(certificate as X509Certificate2 ?? new X509Certificate2(certificate));
    }

    /// <summary>
    /// Reads a frame body of <paramref name="length"/> bytes into a pooled buffer that grows as the bytes arrive, so a
    /// length prefix alone makes this node hold nothing; a body that stops arriving for the read timeout is refused.
    /// </summary>
    private async Task<byte[]> ReadBody(Stream stream, int length)
    {
        const int FirstBuffer = 64 * 1024;
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(length, FirstBuffer));
        var read = 0;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        try
        {
            while (read < length)
            {
                if (read == buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(length, 2L * buffer.Length));
                    buffer.AsSpan(0, read).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                timeout.CancelAfter(_settings.ReadTimeout);
                var n = await stream.ReadAsync(buffer.AsMemory(read, Math.Min(buffer.Length, length) - read), timeout.Token);
                if (n == 0)
                {
                    throw new EndOfStreamException();
                }
                read += n;
            }
            return buffer;
        }
        catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw new RefusedException(PeerRefusal.ReadTimeout,
                $"a frame of {length} bytes stopped after {read} for {_settings.ReadTimeout}");
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    /// <summary>Delivers a frame from <paramref name="node"/>: its sender must be one of that node's actors.</summary>
    private void Deliver(Address node, DataFrame frame)
    {
        var target = Resolve(frame.TargetPath);
        if (!TensorTransport.IsLocal(target))
        {
            throw new RefusedException(PeerRefusal.ForgedSender, $"the target '{frame.TargetPath}' is not an actor of this node");
        }
        var sender = ActorRefs.NoSender;
        if (frame.SenderPath.Length > 0)
        {
            if (!ActorPath.TryParse(frame.SenderPath, out var senderPath) || senderPath.Address != node)
            {
                throw new RefusedException(PeerRefusal.ForgedSender,
                    $"the frame names the sender '{frame.SenderPath}', which is not an actor of {node}");
            }
            sender = Resolve(frame.SenderPath);
        }
        var message = WireSerializer.Deserialize(frame.Payload, frame.Manifest);
        target.Tell(message, sender);
        Interlocked.Increment(ref _framesDelivered);
    }

    /// <summary>Resolves an actor path once (the provider's resolution parses and walks the tree each time).</summary>
    private IActorRef Resolve(string path)
    {
        // Paths carry the actor's uid, so a cached ref is exactly the incarnation the sender meant (as with Akka).
        if (_targets.TryGetValue(path, out var known))
        {
            return known;
        }
        IActorRef resolved;
        try
        {
            resolved = _system.Provider.ResolveActorRef(path);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new MalformedFrameException($"the actor path '{path}' does not resolve: {e.Message}");
        }
        if (!resolved.IsNobody() && !Equals(resolved, _system.DeadLetters))
        {
            if (_targets.Count >= 4096)
            {
                _targets.Clear(); // bounded: a stream of distinct paths must not grow the cache forever
            }
            _targets[path] = resolved;
        }
        return resolved;
    }

    // ---- sending ----

    /// <summary>A frame with what a re-send over Akka needs (the original message is gone: its arrays may be reused).</summary>
    private sealed record Queued(OutgoingFrame Frame, IActorRef Target, IActorRef? Sender);

    /// <summary>Sends a frame the channel could not deliver over Akka instead, or drops it when this node is stopping.</summary>
    private void SendOverAkka(Queued queued)
    {
        try
        {
            if (!_stop.IsCancellationRequested)
            {
                var message = WireSerializer.Deserialize(queued.Frame.Payload, queued.Frame.Manifest);
                _akkaPath.SendOverAkka(queued.Target, message, queued.Sender);
            }
        }
        catch (Exception e) when (e is SerializationException or ArgumentException)
        {
            _log.Warning("data channel: could not re-send a {0} to {1} over Akka: {2}", queued.Frame.Manifest, queued.Target, e.Message);
        }
        finally
        {
            queued.Frame.Release();
        }
    }

    /// <summary>One peer node: its advertised endpoint, its reachability and the current outbound connection.</summary>
    private sealed class Peer(Address address)
    {
        private readonly object _gate = new();
        private DnsEndPoint? _endpoint;
        private Connection? _connection;
        private long _retryAt;

        public Address Address { get; } = address;
        public volatile bool Unreachable;

        public void Learn(DnsEndPoint endpoint)
        {
            lock (_gate)
            {
                if (Equals(_endpoint, endpoint))
                {
                    return;
                }
                _endpoint = endpoint;
                _retryAt = 0;
                _connection?.Close(); // the node restarted on another port: the old connection leads nowhere
            }
        }

        /// <summary>A live connection to this peer (started on first use), or null when the channel should not be used.</summary>
        public Connection? Usable(DataChannel owner)
        {
            lock (_gate)
            {
                if (_endpoint is null || Unreachable)
                {
                    return null;
                }
                if (_connection is { Broken: false })
                {
                    return _connection;
                }
                if (Environment.TickCount64 < _retryAt)
                {
                    return null;
                }
                _connection = new Connection(owner, this, _endpoint);
                return _connection;
            }
        }

        public void Failed(Connection connection)
        {
            lock (_gate)
            {
                if (_connection == connection && !connection.ClosedOnPurpose)
                {
                    _retryAt = Environment.TickCount64 + (long)connection.Owner._settings.RetryAfter.TotalMilliseconds;
                }
            }
        }

        public void Close()
        {
            lock (_gate)
            {
                _connection?.Close();
            }
        }
    }

    /// <summary>One outbound connection: a bounded queue and the task that connects and writes it in order.</summary>
    private sealed class Connection
    {
        private readonly Peer _peer;
        private readonly DnsEndPoint _endpoint;
        private readonly Channel<Queued> _queue;
        private readonly CancellationTokenSource _closed;
        private volatile bool _broken;

        public Connection(DataChannel owner, Peer peer, DnsEndPoint endpoint)
        {
            Owner = owner;
            _peer = peer;
            _endpoint = endpoint;
            _queue = Channel.CreateBounded<Queued>(new BoundedChannelOptions(owner._settings.QueuedFramesPerPeer)
            {
                SingleReader = true,
                FullMode = BoundedChannelFullMode.Wait, // TryWrite then says false: the sender takes the Akka path
            });
            _closed = CancellationTokenSource.CreateLinkedTokenSource(owner._stop.Token);
            _ = Task.Run(Write);
        }

        public DataChannel Owner { get; }
        public bool Broken => _broken;

        /// <summary>Closed by <see cref="Close"/> (cut, unreachable, forgotten), not by a failure: no retry back-off.</summary>
        public bool ClosedOnPurpose { get; private set; }

        public bool TryEnqueue(Queued frame) => !_broken && _queue.Writer.TryWrite(frame);

        public void Close()
        {
            ClosedOnPurpose = true;
            _broken = true;
            try
            {
                _closed.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The writer has already finished.
            }
        }

        private async Task Write()
        {
            Queued? current = null;
            try
            {
                using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                Stream stream;
                using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(_closed.Token))
                {
                    connectTimeout.CancelAfter(Owner._settings.ConnectTimeout);
                    await socket.ConnectAsync(_endpoint, connectTimeout.Token);
                    stream = new NetworkStream(socket, ownsSocket: false);
                    if (Owner._settings.Certificate is { } certificate)
                    {
                        var tls = new SslStream(stream, leaveInnerStreamOpen: false);
                        stream = tls;
                        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                        {
                            TargetHost = _endpoint.Host,
                            ClientCertificates = [certificate],
                            RemoteCertificateValidationCallback = Owner.IsTrusted,
                        }, connectTimeout.Token);
                    }
                    await DataChannelHandshake.ClientAsync(stream, Owner._selfAddress, _peer.Address.ToString(),
                        Owner._settings.Secret, connectTimeout.Token);
                }
                await using var _ = stream;
                Owner._log.Info("data channel: connected to {0} at {1}", _peer.Address, _endpoint);
                while (await _queue.Reader.WaitToReadAsync(_closed.Token))
                {
                    while (_queue.Reader.TryRead(out current))
                    {
                        await stream.WriteAsync(current.Frame.Bytes, _closed.Token);
                        Interlocked.Increment(ref Owner._framesSent);
                        current.Frame.Release();
                        current = null;
                    }
                }
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException
                                          or HandshakeRefusedException or AuthenticationException)
            {
                if (!_closed.IsCancellationRequested)
                {
                    Owner._log.Warning("data channel: the connection to {0} ({1}) failed; its frames go over Akka: {2}",
                        _peer.Address, _endpoint, e.Message);
                }
            }
            finally
            {
                _broken = true;
                _queue.Writer.TryComplete();
                _peer.Failed(this);
                // Whatever did not certainly leave goes over Akka: a duplicate is dropped by the coordinator's
                // (step, slice) bookkeeping and a repeated weights version is ignored by the cache; a loss would cost a
                // deadline.
                if (current is not null)
                {
                    Owner.SendOverAkka(current);
                }
                while (_queue.Reader.TryRead(out var left))
                {
                    Owner.SendOverAkka(left);
                }
                _closed.Dispose();
            }
        }
    }

    private sealed class Id(DataChannelSettings settings) : ExtensionIdProvider<DataChannel>
    {
        public override DataChannel CreateExtension(ExtendedActorSystem system) => new(system, settings);
    }
}
