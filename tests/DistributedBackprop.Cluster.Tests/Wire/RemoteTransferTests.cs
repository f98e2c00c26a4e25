using Akka.Actor;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Wire;
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
}
