using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.Serialization;
using System.Security.Authentication;
using System.Threading.Channels;
using Akka.Actor;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;

namespace DistributedBackprop.Cluster.Transport;

/// <summary>The data channel's sending side: one queue and connection per peer, and the fallback to Akka.</summary>
public sealed partial class DataChannel
{
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
}
