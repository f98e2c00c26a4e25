using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Wire;
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

    public DataChannelTests() : base(WireSamples.HostedSystem("chan-a", remoting: true))
    {
        _b = WireSamples.HostedSystem("chan-b", remoting: true);
        _channelA = DataChannel.Start(Sys, new DataChannelSettings { RetryAfter = TimeSpan.FromMinutes(5) });
        _channelB = DataChannel.Start(_b, new DataChannelSettings());
    }

    protected override void AfterAll()
    {
        _b.Terminate().Wait(TimeSpan.FromSeconds(10));
        base.AfterAll();
    }

    private Address AddressA => ((ExtendedActorSystem)Sys).Provider.DefaultAddress;
    private Address AddressB => ((ExtendedActorSystem)_b).Provider.DefaultAddress;

    private void Introduce()
    {
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

    /// <summary>Connects to B's channel, writes <paramref name="bytes"/>, and waits until B closes the connection.</summary>
    private async Task AssertClosedAfter(byte[] bytes)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(_channelB.Endpoint.Host, _channelB.Endpoint.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(bytes);
        client.Client.Shutdown(SocketShutdown.Send); // a frame that promises more bytes than it has ends here
        using var deadline = new CancellationTokenSource(Patience);
        var buffer = new byte[16];
        try
        {
            while (await stream.ReadAsync(buffer, deadline.Token) > 0)
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
    public async Task Malformed_frames_close_their_connection_and_the_node_keeps_working()
    {
        Introduce();
        var echo = RemoteEcho();
        var hello = DataFrames.Hello(AddressA.ToString());
        var target = echo.Path.ToSerializationFormat();

        await AssertClosedAfter(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\n\r\n"));                            // not a hello
        await AssertClosedAfter([.. hello, .. BitConverter.GetBytes(int.MaxValue)]);                            // oversized
        await AssertClosedAfter([.. hello, .. BitConverter.GetBytes(-1)]);                                      // negative length
        await AssertClosedAfter([.. hello, .. Frame(target, "", "zz", [0x90])]);                                // unknown manifest
        await AssertClosedAfter([.. hello, .. Frame(target, "", "sr", [0x98, 0xA1, (byte)'r', 0x01])]);         // truncated payload
        await AssertClosedAfter([.. hello, .. Frame(target, "", "pw", [0x92, 0xA1, (byte)'r', 0x01], 9000)]); // length past the frame
        await AssertClosedAfter([.. hello, .. Frame("akka.tcp://elsewhere@10.9.9.9:1/user/x", "", "pw", [0x92, 0xA1, (byte)'r', 0x01])]);
        Assert.Equal(6, _channelB.ConnectionsRejected); // the one that claimed 9000 bytes ended without them: a plain close

        // B still takes frames over a good connection.
        var client = LocalEndpoint();
        var weights = Weights(3, 500_000);
        client.Tell(new SendVia(echo, weights));
        WireSamples.AssertBitEqual(weights, ExpectMsg<WeightsVersion>(Patience));
        Assert.Equal(1, _channelB.FramesDelivered);
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
            Assert.Throws<MalformedFrameException>(() => DataFrames.BodyLength(BitConverter.GetBytes(DataFrames.MaxFrameBytes + 1)));
        }
        finally
        {
            frame.Release();
        }
    }
}
