using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Transport;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Wire;

/// <summary>
/// Two ActorSystems with remoting and a data channel each on 127.0.0.1 (port 0), told each other's endpoint directly
/// (a cluster's <see cref="DataEndpointExchange"/> does that in a node). Messages sent through
/// <see cref="TensorTransport"/> take the channel when it is up and Akka when it is not.
/// </summary>
public sealed class DataChannelTests : TestKit
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly ActorSystem _b;
    private readonly DataChannel _channelA;
    private readonly DataChannel _channelB;

    private static readonly byte[] Secret = "a cluster secret of this test only"u8.ToArray();

    public DataChannelTests() : base(WireSamples.HostedSystem("chan-a", remoting: true))
    {
        _b = WireSamples.HostedSystem("chan-b", remoting: true);
        _channelA = DataChannel.Start(Sys, new DataChannelSettings { RetryAfter = TimeSpan.FromMinutes(5), Secret = Secret });
        _channelB = DataChannel.Start(_b, new DataChannelSettings
        {
            Secret = Secret,
            MaxFrameBytes = DataFrames.FrameLimitFor(2_000_000),
            HandshakeTimeout = TimeSpan.FromSeconds(1),
            ReadTimeout = TimeSpan.FromSeconds(1),
            MaxConnectionsPerPeer = 2,
            MaxConnections = 8,
        });
    }

    protected override void AfterAll()
    {
        _b.Terminate().Wait(TimeSpan.FromSeconds(10));
        base.AfterAll();
    }

    private Address AddressA => ((ExtendedActorSystem)Sys).Provider.DefaultAddress;
    private Address AddressB => ((ExtendedActorSystem)_b).Provider.DefaultAddress;

    /// <summary>A and B are members of one cluster and know each other's endpoint (a node's exchange does this).</summary>
    private void Introduce()
    {
        _channelA.Admit(AddressB);
        _channelB.Admit(AddressA);
        _channelA.Learn(AddressB, _channelB.Endpoint.Host, _channelB.Endpoint.Port);
        _channelB.Learn(AddressA, _channelA.Endpoint.Host, _channelA.Endpoint.Port);
    }

    /// <summary>Local command (never crosses the network): send this message to that target through the transport.</summary>
    private sealed record SendVia(IActorRef Target, IWireMessage Message);

    /// <summary>Reassembles whatever arrives (chunks from the Akka path, whole messages from either) and reports it.</summary>
    private sealed class Endpoint : ReceiveActor
    {
        public Endpoint(Action<Endpoint, IWireMessage, IActorRef> onMessage)
        {
            var transport = TensorTransport.For(Context.System);
            var assembler = new ChunkAssembler(transport.Serializer);
            Receive<SendVia>(cmd => transport.Send(cmd.Target, cmd.Message, Self));
            Receive<TensorChunk>(chunk =>
            {
                if (assembler.Accept(Sender, chunk) is { Status: ChunkStatus.Complete } outcome)
                {
                    onMessage(this, outcome.Message!, Sender);
                }
            });
            Receive<IWireMessage>(message => onMessage(this, message, Sender));
        }

        public TensorTransport Transport => TensorTransport.For(Context.System);

        public IActorRef SelfRef => Self;
    }

    /// <summary>An actor on B that sends everything back to its sender through the transport.</summary>
    private IActorRef RemoteEcho()
    {
        _b.ActorOf(Props.Create(() => new Endpoint((self, message, sender) => self.Transport.Send(sender, message, self.SelfRef))), "echo");
        var echo = Sys.ActorSelection(new RootActorPath(AddressB) / "user" / "echo").ResolveOne(Patience).Result;
        Assert.False(TensorTransport.IsLocal(echo));
        return echo;
    }

    private IActorRef LocalEndpoint()
    {
        var testActor = TestActor;
        return Sys.ActorOf(Props.Create(() => new Endpoint((_, message, _) => testActor.Tell(message))), "client");
    }

    private static WeightsVersion Weights(long version, int floats)
    {
        var rng = new Random((int)version);
        return new WeightsVersion("run-chan", version,
            Enumerable.Range(0, floats).Select(_ => WireSamples.RandomFloat(rng)).ToArray(),
            Enumerable.Range(0, 100).Select(_ => WireSamples.RandomFloat(rng)).ToArray());
    }

    [Fact]
    public void Large_tensors_cross_the_channel_both_ways_intact_and_in_order()
    {
        Introduce();
        var echo = RemoteEcho();
        var client = LocalEndpoint();
        var sent = Enumerable.Range(1, 6).Select(v => Weights(v, v % 2 == 0 ? 1_000_000 : 250_000)).ToList();

        foreach (var weights in sent)
        {
            client.Tell(new SendVia(echo, weights));
        }

        foreach (var weights in sent)
        {
            var back = ExpectMsg<WeightsVersion>(Patience);
            Assert.NotSame(weights, back);
            WireSamples.AssertBitEqual(weights, back);
        }
        // Every message went over the channel, both ways (none over Akka, which would have chunked them).
        Assert.Equal(sent.Count, _channelB.FramesDelivered);
        Assert.Equal(sent.Count, _channelA.FramesDelivered);
    }

    [Fact]
    public void With_no_listener_at_the_peer_messages_fall_back_to_akka_and_arrive()
    {
        var closed = new TcpListener(IPAddress.Loopback, 0);
        closed.Start();
        var deadPort = ((IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop();
        _channelA.Learn(AddressB, "127.0.0.1", deadPort); // B's channel "is down"
        var echo = RemoteEcho();
        var client = LocalEndpoint();

        // The first is queued and re-sent over Akka when the connection fails; the second goes over Akka at once.
        var first = Weights(1, 400_000);
        var second = Weights(2, 1000);
        client.Tell(new SendVia(echo, first));
        client.Tell(new SendVia(echo, second));

        var backs = new[] { ExpectMsg<WeightsVersion>(Patience), ExpectMsg<WeightsVersion>(Patience) }
            .OrderBy(w => w.Version).ToList();
        WireSamples.AssertBitEqual(first, backs[0]);
        WireSamples.AssertBitEqual(second, backs[1]);
        Assert.Equal(0, _channelB.FramesDelivered);
    }

    [Fact]
    public void A_cut_peer_gets_nothing_over_the_channel_until_restored_or_the_cut_expires()
    {
        Introduce();
        var echo = RemoteEcho();
        _channelA.Cut([AddressB]);
        Assert.False(_channelA.TrySend(echo, Weights(1, 10), TestActor));
        _channelA.Restore([AddressB]);
        Assert.True(_channelA.TrySend(echo, Weights(2, 10), TestActor));
        ExpectMsg<WeightsVersion>(Patience); // the echo answers (over the channel: B knows A's endpoint)

        // A cut with a duration heals by itself (a partition whose heal never runs must not cut the channel for good).
        _channelA.Cut([AddressB], TimeSpan.FromSeconds(2));
        Assert.False(_channelA.TrySend(echo, Weights(3, 10), TestActor));
        AwaitAssert(() => Assert.True(_channelA.TrySend(echo, Weights(4, 10), TestActor)), Patience, TimeSpan.FromMilliseconds(50));
        Assert.Equal(4, ExpectMsg<WeightsVersion>(Patience).Version);
    }

    /// <summary>
    /// Connects to B's channel, completes the handshake as <paramref name="node"/> with <paramref name="secret"/> when
    /// given, writes <paramref name="bytes"/>, and waits until B closes the connection.
    /// </summary>
    private async Task AssertClosedAfter(byte[] bytes, string? node = null, byte[]? secret = null, bool shutdown = true)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(_channelB.Endpoint.Host, _channelB.Endpoint.Port);
        var stream = client.GetStream();
        using var deadline = new CancellationTokenSource(Patience);
        if (node is not null)
        {
            await DataChannelHandshake.ClientAsync(stream, node, AddressB.ToString(), secret, deadline.Token);
        }
        await stream.WriteAsync(bytes);
        if (shutdown)
        {
            client.Client.Shutdown(SocketShutdown.Send); // a frame that promises more bytes than it has ends here
        }
        await ReadUntilClosed(stream, deadline.Token);
    }

    private static async Task ReadUntilClosed(Stream stream, CancellationToken deadline)
    {
        var buffer = new byte[256];
        try
        {
            while (await stream.ReadAsync(buffer, deadline) > 0)
            {
            }
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            // Closed with our unread bytes still in its buffer: the peer's stack resets instead of a plain close.
        }
    }

    private static byte[] Frame(string target, string sender, string manifest, byte[] payload, int? claimedLength = null)
    {
        using var body = new MemoryStream();
        void Field(string text, bool wide)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            if (wide)
            {
                body.Write(BitConverter.GetBytes((ushort)bytes.Length));
            }
            else
            {
                body.WriteByte((byte)bytes.Length);
            }
            body.Write(bytes);
        }
        Field(target, wide: true);
        Field(sender, wide: true);
        Field(manifest, wide: false);
        body.Write(payload);
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteInt32LittleEndian(frame, claimedLength ?? (int)body.Length);
        body.ToArray().CopyTo(frame, 4);
        return frame;
    }

    [Fact]
    public async Task Malformed_frames_from_a_member_close_their_connection_and_the_node_keeps_working()
    {
        Introduce();
        var echo = RemoteEcho();
        var a = AddressA.ToString();
        var target = echo.Path.ToSerializationFormat();

        await AssertClosedAfter([.. BitConverter.GetBytes(-1)], a, Secret);                                      // negative length
        await AssertClosedAfter(Frame(target, "", "zz", [0x90]), a, Secret);                                     // unknown manifest
        await AssertClosedAfter(Frame(target, "", "sr", [0x98, 0xA1, (byte)'r', 0x01]), a, Secret);              // truncated payload
        await AssertClosedAfter(Frame(target, "", "pw", [0x92, 0xA1, (byte)'r', 0x01], 9000), a, Secret);       // length past the frame
        Assert.Equal(2, _channelB.Refusals(PeerRefusal.MalformedFrame)); // the one that claimed 9000 bytes ended without them: a plain close
        Assert.Equal(1, _channelB.Refusals(PeerRefusal.OversizedFrame)); // -1 is outside 5..limit

        // B still takes frames over a good connection.
        var client = LocalEndpoint();
        var weights = Weights(3, 500_000);
        client.Tell(new SendVia(echo, weights));
        WireSamples.AssertBitEqual(weights, ExpectMsg<WeightsVersion>(Patience));
        Assert.Equal(1, _channelB.FramesDelivered);
    }

    [Fact]
    public async Task A_peer_without_the_secret_is_refused_before_it_can_send_a_frame()
    {
        Introduce();
        var echo = RemoteEcho();
        var pull = Frame(echo.Path.ToSerializationFormat(), "", "pw", [0x92, 0xA1, (byte)'r', 0x01]);

        await AssertClosedAfter(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\n\r\n"));                             // not a hello
        // A proof made with another secret (or replayed from an earlier connection: the server's nonce is fresh each
        // time, so an old proof fits no new connection), sent straight after the hello with a frame behind it.
        var hello = DataChannelHandshake.Hello(AddressA.ToString(), new byte[DataChannelHandshake.NonceBytes]);
        await AssertClosedAfter([.. hello, .. System.Security.Cryptography.HMACSHA256.HashData("another secret"u8, hello), .. pull]);
        await AssertClosedAfter([.. hello, .. new byte[DataChannelHandshake.ProofBytes], .. pull]);
        // A node without the secret refuses a server that proves one it cannot check, and gives up.
        await Assert.ThrowsAsync<HandshakeRefusedException>(() => AssertClosedAfter(pull, AddressA.ToString(), secret: null));

        Assert.Equal(0, _channelB.FramesDelivered);
        AwaitCondition(() => _channelB.Refusals(PeerRefusal.Unauthenticated) == 4, Patience);
    }

    [Fact]
    public async Task A_silent_socket_is_closed_at_the_handshake_timeout_and_a_stalled_frame_at_the_read_timeout()
    {
        Introduce();
        var echo = RemoteEcho();
        using var deadline = new CancellationTokenSource(Patience);

        using (var idle = new TcpClient())
        {
            await idle.ConnectAsync(_channelB.Endpoint.Host, _channelB.Endpoint.Port);
            await ReadUntilClosed(idle.GetStream(), deadline.Token); // B closes it: nothing was sent
        }
        Assert.Equal(1, _channelB.Refusals(PeerRefusal.HandshakeTimeout));

        // A member promises a frame of 1 MB and sends 10 bytes of it: B holds at most what arrived, then gives up.
        var stalled = Frame(echo.Path.ToSerializationFormat(), "", "pw", new byte[10], claimedLength: 1_000_000);
        await AssertClosedAfter(stalled, AddressA.ToString(), Secret, shutdown: false);
        Assert.Equal(1, _channelB.Refusals(PeerRefusal.ReadTimeout));
    }

    [Fact]
    public async Task A_length_prefix_past_the_jobs_frame_limit_is_refused_before_any_body_is_read()
    {
        Introduce();
        // The old limit was 256 MiB whatever the job: B's job has 2,000,000 floats at most.
        await AssertClosedAfter(BitConverter.GetBytes(DataFrames.FrameLimitFor(2_000_000) + 1), AddressA.ToString(), Secret,
            shutdown: false);
        Assert.Equal(1, _channelB.Refusals(PeerRefusal.OversizedFrame));
    }

    [Fact]
    public async Task A_node_that_is_no_member_is_refused_even_with_the_secret()
    {
        Introduce();
        await AssertClosedAfter([], "akka.tcp://chan-a@127.0.0.1:1", Secret, shutdown: false);
        Assert.Equal(1, _channelB.Refusals(PeerRefusal.NotMember));
        _channelB.Forget(AddressA); // a member that left
        await AssertClosedAfter([], AddressA.ToString(), Secret, shutdown: false);
        Assert.Equal(2, _channelB.Refusals(PeerRefusal.NotMember));
    }

    [Fact]
    public async Task A_frame_whose_sender_is_on_another_node_is_refused_and_not_delivered()
    {
        Introduce();
        var echo = RemoteEcho();
        var target = echo.Path.ToSerializationFormat();
        var forged = $"akka.tcp://chan-b@127.0.0.1:{AddressB.Port}/user/coordinator#1"; // "from" B's own coordinator
        await AssertClosedAfter(Frame(target, forged, "pw", [0x92, 0xA1, (byte)'r', 0x01]), AddressA.ToString(), Secret);
        await AssertClosedAfter(Frame("akka.tcp://elsewhere@10.9.9.9:1/user/x", "", "pw", [0x92, 0xA1, (byte)'r', 0x01]),
            AddressA.ToString(), Secret);
        Assert.Equal(2, _channelB.Refusals(PeerRefusal.ForgedSender));
        Assert.Equal(0, _channelB.FramesDelivered);
    }

    [Fact]
    public async Task Connections_past_the_caps_are_closed_at_once()
    {
        Introduce();
        using var deadline = new CancellationTokenSource(Patience);
        var open = new List<TcpClient>();
        try
        {
            // Two authenticated connections from A are allowed; the third is refused.
            for (var i = 0; i < 3; i++)
            {
                var client = new TcpClient();
                open.Add(client);
                await client.ConnectAsync(_channelB.Endpoint.Host, _channelB.Endpoint.Port);
                await DataChannelHandshake.ClientAsync(client.GetStream(), AddressA.ToString(), AddressB.ToString(), Secret, deadline.Token);
            }
            await ReadUntilClosed(open[2].GetStream(), deadline.Token);
            Assert.Equal(1, _channelB.Refusals(PeerRefusal.TooManyConnections));
            // In all, 8: the ninth socket is closed before its handshake.
            for (var i = 0; i < 7; i++)
            {
                var client = new TcpClient();
                open.Add(client);
                await client.ConnectAsync(_channelB.Endpoint.Host, _channelB.Endpoint.Port);
            }
            AwaitCondition(() => _channelB.Refusals(PeerRefusal.TooManyConnections) >= 2, Patience);
        }
        finally
        {
            open.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public void Frames_parse_back_to_what_was_encoded_and_reject_bad_lengths()
    {
        var message = new PullWeights("run", 5);
        var frame = DataFrames.Encode("akka.tcp://s@h:1/user/t#1", "akka.tcp://s@h:2/user/u#2", "pw", message, 0);
        try
        {
            Assert.Equal(frame.Length - 4, DataFrames.BodyLength(frame.Bytes.Span));
            var parsed = DataFrames.Parse(frame.Bytes[4..]);
            Assert.Equal("akka.tcp://s@h:1/user/t#1", parsed.TargetPath);
            Assert.Equal("akka.tcp://s@h:2/user/u#2", parsed.SenderPath);
            Assert.Equal(message, WireSerializer.Deserialize(parsed.Payload, parsed.Manifest));
            Assert.Throws<MalformedFrameException>(() => DataFrames.Parse(frame.Bytes[4..10]));
            Assert.Throws<OversizedFrameException>(() => DataFrames.BodyLength(BitConverter.GetBytes(DataFrames.MaxFrameBytes + 1)));
            Assert.Throws<OversizedFrameException>(() => DataFrames.BodyLength(BitConverter.GetBytes(1001), limit: 1000));
        }
        finally
        {
            frame.Release();
        }
    }
}
