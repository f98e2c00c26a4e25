using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.Serialization;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;

namespace DistributedBackprop.Cluster.Transport;

/// <summary>The data channel's receiving side: accepting, authenticating and reading connections, delivering frames.</summary>
public sealed partial class DataChannel
{
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
}
