using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Akka.Serialization;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Transport;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Wire;

/// <summary>
/// Two ActorSystems with remoting on 127.0.0.1 (port 0), both built through the hosting extensions: a 4 MB
/// WeightsVersion goes A → B chunked, B reassembles and sends it back chunked, A reassembles it bit-identical.
/// </summary>
public sealed class RemoteTransferTests : TestKit
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly ActorSystem _b;

    public RemoteTransferTests() : base(WireSamples.HostedSystem("wire-a", remoting: true))
    {
        _b = WireSamples.HostedSystem("wire-b", remoting: true);
    }

    protected override void AfterAll()
    {
        _b.Terminate().Wait(TimeSpan.FromSeconds(10));
        base.AfterAll();
    }

    /// <summary>Local command (never crosses the network): send this message to that target through the transport.</summary>
    private sealed record SendVia(IActorRef Target, IWireMessage Message);

    /// <summary>Reassembles whatever arrives and hands complete messages to <c>onMessage</c>; reports rejections.</summary>
    private sealed class Endpoint : ReceiveActor
    {
        public Endpoint(Action<Endpoint, IWireMessage, IActorRef> onMessage, IActorRef reject)
        {
            var transport = TensorTransport.For(Context.System);
            var assembler = new ChunkAssembler(transport.Serializer);
            Receive<SendVia>(cmd => transport.Send(cmd.Target, cmd.Message, Self));
            Receive<TensorChunk>(chunk =>
            {
                var outcome = assembler.Accept(Sender, chunk);
                if (outcome.Status == ChunkStatus.Complete)
                {
                    onMessage(this, outcome.Message!, Sender);
                }
                else if (outcome.Status == ChunkStatus.Rejected)
                {
                    reject.Tell(outcome.Reason);
                }
            });
            Receive<IWireMessage>(message => onMessage(this, message, Sender));
        }

        public TensorTransport Transport => TensorTransport.For(Context.System);

        public IActorRef SelfRef => Self;
    }

    private IActorRef RemoteEcho()
    {
        var reject = CreateTestProbe();
        _b.ActorOf(Props.Create(() => new Endpoint((self, message, sender) => self.Transport.Send(sender, message, self.SelfRef), reject.Ref)), "echo");
        var bAddress = ((ExtendedActorSystem)_b).Provider.DefaultAddress;
        var echo = Sys.ActorSelection(new RootActorPath(bAddress) / "user" / "echo").ResolveOne(Patience).Result;
        Assert.False(TensorTransport.IsLocal(echo));
        return echo;
    }

    private IActorRef LocalEndpoint()
    {
        var testActor = TestActor;
        return Sys.ActorOf(Props.Create(() => new Endpoint((_, message, _) => testActor.Tell(message), testActor)), "client");
    }

    [Fact]
    public void A_4_MB_weights_version_crosses_remoting_chunked_and_comes_back_bit_identical()
    {
        var rng = new Random(44);
        var weights = new WeightsVersion("run-remote", 9,
            Enumerable.Range(0, 1_000_000).Select(_ => WireSamples.RandomFloat(rng)).ToArray(),
            Enumerable.Range(0, 1000).Select(_ => WireSamples.RandomFloat(rng)).ToArray());
        var echo = RemoteEcho();
        var client = LocalEndpoint();

        client.Tell(new SendVia(echo, weights));

        var back = ExpectMsg<WeightsVersion>(Patience);
        Assert.NotSame(weights, back);
        WireSamples.AssertBitEqual(weights, back);
        ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // no rejection report, no second copy
    }

    [Fact]
    public void Small_and_medium_messages_cross_whole_and_in_order()
    {
        var echo = RemoteEcho();
        var client = LocalEndpoint();
        var rng = new Random(45);
        var sent = new List<IWireMessage>();
        foreach (var type in WireSamples.ConcreteWireTypes.Where(t => t != typeof(TensorChunk)))
        {
            sent.Add(WireSamples.Random(type, rng));
        }
        sent.Add(new SliceResult("run", 1, 1, 0, 0, new float[300_000], "w", 0)); // 1.2 MB: chunked
        sent.Add(new PullWeights("run", 2));
        foreach (var message in sent)
        {
            client.Tell(new SendVia(echo, message));
        }
        foreach (var message in sent)
        {
            var back = ExpectMsg<IWireMessage>(Patience);
            WireSamples.AssertBitEqual(message, back);
        }
    }

    /// <summary>A message a hostile or broken peer sends under the wire serializer's identifier with bad bytes.</summary>
    private sealed record Forged(string Manifest, byte[] Bytes);

    private sealed class ForgingSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
    {
        public override int Identifier => WireSerialization.Identifier;

        public override string Manifest(object o) => ((Forged)o).Manifest;

        public override byte[] ToBinary(object obj) => ((Forged)obj).Bytes;

        public override object FromBinary(byte[] bytes, string manifest) => throw new NotSupportedException();
    }

    [Fact]
    public async Task Malformed_payloads_from_a_peer_are_logged_and_dropped_and_remoting_keeps_working()
    {
        var echo = RemoteEcho();
        var client = LocalEndpoint();
        var logs = CreateTestProbe(_b);
        _b.EventStream.Subscribe(logs.Ref, typeof(LogEvent));

        var services = new ServiceCollection();
        services.AddAkka("wire-forger", builder => builder
            .WithRemoting("127.0.0.1", 0).WithWireRemotingSettings()
            .WithCustomSerializer("forger", [typeof(Forged)], system => new ForgingSerializer(system)));
        var forger = services.BuildServiceProvider().GetRequiredService<ActorSystem>();
        try
        {
            var echoFromForger = await forger.ActorSelection(echo.Path).ResolveOne(Patience);
            echoFromForger.Tell(new Forged("zz", [0x90]));                       // unknown manifest
            echoFromForger.Tell(new Forged("sr", [0x98, 0xA1, (byte)'r', 0x01])); // truncated SliceResult
            echoFromForger.Tell(new Forged("pw", [0x92, 0xC1, 0xC1]));             // never-used MessagePack code

            var failures = 0;
            logs.FishForMessage<LogEvent>(e =>
            {
                var text = e.ToString();
                if (text.Contains("Unknown wire manifest") || text.Contains("Malformed"))
                {
                    failures++;
                }
                return failures == 3;
            }, Patience);

            // the echo never saw the forged messages, and both associations still work
            var valid = new PullWeights("run", 77);
            client.Tell(new SendVia(echo, valid));
            Assert.Equal(valid, ExpectMsg<PullWeights>(Patience));
        }
        finally
        {
            await forger.Terminate();
        }
    }
}
