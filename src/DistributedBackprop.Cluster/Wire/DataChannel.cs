using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Runtime.Serialization;
using System.Threading.Channels;
using Akka.Actor;
using Akka.Event;

namespace DistributedBackprop.Cluster.Wire;

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
}

/// <summary>
/// A dedicated TCP channel for large messages (DESIGN, Wire: "tensors travel on a dedicated data channel"). Akka.Remote
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
/// Akka's throttler blackholes them. Not for TLS clusters: the channel is plain TCP, so ClusterNode leaves it off there.
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

    /// <summary>Inbound connections closed for a malformed or oversized frame.</summary>
    public long ConnectionsRejected => Interlocked.Read(ref _connectionsRejected);

    private long _framesDelivered;
    private long _framesSent;
    private long _connectionsRejected;

    /// <summary>The node at <paramref name="node"/> listens for data at <paramref name="host"/>:<paramref name="port"/>.</summary>
    public void Learn(Address node, string host, int port)
    {
        var peer = _peers.GetOrAdd(node, a => new Peer(a));
        peer.Learn(new DnsEndPoint(host, port));
    }

    /// <summary>The node left the cluster: close its connection and forget its endpoint.</summary>
    public void Forget(Address node)
    {
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
            socket.NoDelay = true;
            _inbound[socket] = 0;
            _ = Task.Run(() => ReadLoop(socket));
        }
    }

    /// <summary>Reads one inbound connection frame by frame, in order, until it closes or breaks the format.</summary>
    private async Task ReadLoop(Socket socket)
    {
        var from = socket.RemoteEndPoint?.ToString() ?? "?";
        try
        {
            // The socket is closed in finally, after the rejection is counted and logged (tests wait on the close).
            var stream = new NetworkStream(socket, ownsSocket: false);
            var nodeText = await DataFrames.ReadHelloAsync(stream, _stop.Token);
            if (!ActorPath.TryParseAddress(nodeText, out var node))
            {
                throw new MalformedFrameException($"the hello names '{nodeText}', which is not an actor system address");
            }
            from = $"{node} ({from})";
            var prefix = new byte[sizeof(int)];
            while (true)
            {
                await stream.ReadExactlyAsync(prefix, _stop.Token);
                var length = DataFrames.BodyLength(prefix);
                var body = ArrayPool<byte>.Shared.Rent(length);
                try
                {
                    await stream.ReadExactlyAsync(body.AsMemory(0, length), _stop.Token);
                    if (!IsCut(node))
                    {
                        Deliver(DataFrames.Parse(body.AsMemory(0, length)));
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(body);
                }
            }
        }
        catch (Exception e) when (e is MalformedFrameException or SerializationException)
        {
            Interlocked.Increment(ref _connectionsRejected);
            _log.Warning("data channel: closed the connection from {0}: {1}", from, e.Message);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or SocketException or OperationCanceledException
                                      or ObjectDisposedException)
        {
            // The peer closed or broke the connection, or this node is stopping: nothing was half-delivered.
        }
        finally
        {
            _inbound.TryRemove(socket, out _);
            socket.Dispose();
        }
    }

    private void Deliver(DataFrame frame)
    {
        var target = Resolve(frame.TargetPath);
        if (!TensorTransport.IsLocal(target))
        {
            throw new MalformedFrameException($"the target '{frame.TargetPath}' is not an actor of this node");
        }
        var sender = frame.SenderPath.Length == 0 ? ActorRefs.NoSender : Resolve(frame.SenderPath);
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
                using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(_closed.Token))
                {
                    connectTimeout.CancelAfter(Owner._settings.ConnectTimeout);
                    await socket.ConnectAsync(_endpoint, connectTimeout.Token);
                }
                await socket.SendAsync(DataFrames.Hello(Owner._selfAddress), SocketFlags.None, _closed.Token);
                Owner._log.Info("data channel: connected to {0} at {1}", _peer.Address, _endpoint);
                while (await _queue.Reader.WaitToReadAsync(_closed.Token))
                {
                    while (_queue.Reader.TryRead(out current))
                    {
                        var bytes = current.Frame.Bytes;
                        while (!bytes.IsEmpty)
                        {
                            var sent = await socket.SendAsync(bytes, SocketFlags.None, _closed.Token);
                            bytes = bytes[sent..];
                        }
                        Interlocked.Increment(ref Owner._framesSent);
                        current.Frame.Release();
                        current = null;
                    }
                }
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
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
