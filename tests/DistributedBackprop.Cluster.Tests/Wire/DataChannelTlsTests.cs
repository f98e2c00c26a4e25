using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Transport;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Wire;

/// <summary>
/// The data channel over TLS: both ends present the cluster certificate and trust only what chains to the trust bundle;
/// the secret's handshake runs inside. A peer with an untrusted certificate, with none, or without TLS is refused.
/// </summary>
public sealed class DataChannelTlsTests : TestKit
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private static readonly byte[] Secret = "the TLS test's cluster secret"u8.ToArray();
    private readonly ActorSystem _b;
    private readonly DataChannel _channelA;
    private readonly DataChannel _channelB;
    private readonly X509Certificate2 _cluster = SelfSigned("CN=distbp cluster");

    public DataChannelTlsTests() : base(WireSamples.HostedSystem("tls-a", remoting: true))
    {
        _b = WireSamples.HostedSystem("tls-b", remoting: true);
        var trust = new X509Certificate2Collection(_cluster);
        _channelA = DataChannel.Start(Sys, new DataChannelSettings { Secret = Secret, Certificate = _cluster, TrustBundle = trust });
        _channelB = DataChannel.Start(_b, new DataChannelSettings
        {
            Secret = Secret,
            Certificate = _cluster,
            TrustBundle = trust,
            HandshakeTimeout = TimeSpan.FromSeconds(2),
        });
        var (a, b) = (((ExtendedActorSystem)Sys).Provider.DefaultAddress, ((ExtendedActorSystem)_b).Provider.DefaultAddress);
        _channelA.Admit(b);
        _channelB.Admit(a);
        _channelA.Learn(b, _channelB.Endpoint.Host, _channelB.Endpoint.Port);
        _channelB.Learn(a, _channelA.Endpoint.Host, _channelA.Endpoint.Port);
    }

    protected override void AfterAll()
    {
        _b.Terminate().Wait(TimeSpan.FromSeconds(10));
        _cluster.Dispose();
        base.AfterAll();
    }

    private static X509Certificate2 SelfSigned(string subject)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        // Through PKCS#12 so the private key is usable by SslStream on Linux.
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>Echoes every wire message back to its sender over the transport.</summary>
    private sealed class Echo : ReceiveActor
    {
        public Echo() => Receive<IWireMessage>(message => TensorTransport.For(Context.System).Send(Sender, message, Self));
    }

    private sealed class Client : ReceiveActor
    {
        public Client(IActorRef target, IActorRef report)
        {
            Receive<WeightsVersion>(message =>
            {
                if (Sender.Equals(target))
                {
                    report.Tell(message);
                }
                else
                {
                    TensorTransport.For(Context.System).Send(target, message, Self);
                }
            });
        }
    }

    [Fact]
    public async Task Tensors_cross_a_tls_channel_intact_both_ways()
    {
        _b.ActorOf(Props.Create(() => new Echo()), "echo");
        var echo = await Sys.ActorSelection(new RootActorPath(((ExtendedActorSystem)_b).Provider.DefaultAddress) / "user" / "echo")
            .ResolveOne(Patience);
        var testActor = TestActor;
        var client = Sys.ActorOf(Props.Create(() => new Client(echo, testActor)));
        var rng = new Random(3);
        var sent = new WeightsVersion("run-tls", 1, Enumerable.Range(0, 300_000).Select(_ => WireSamples.RandomFloat(rng)).ToArray(), []);

        client.Tell(sent);

        WireSamples.AssertBitEqual(sent, ExpectMsg<WeightsVersion>(Patience));
        Assert.Equal(1, _channelB.FramesDelivered);
        Assert.Equal(1, _channelA.FramesDelivered);
    }

    [Fact]
    public async Task A_peer_with_an_untrusted_certificate_with_none_or_without_tls_is_refused()
    {
        using var stranger = SelfSigned("CN=distbp cluster"); // the same name, another key: not the cluster's
        await Connect(new X509Certificate2Collection(stranger));
        await Connect([]);
        using (var plain = new TcpClient())
        {
            await plain.ConnectAsync(_channelB.Endpoint.Host, _channelB.Endpoint.Port);
            await plain.GetStream().WriteAsync(DataChannelHandshake.Hello("akka.tcp://x@127.0.0.1:1", new byte[32]));
            using var deadline = new CancellationTokenSource(Patience);
            var buffer = new byte[64];
            try
            {
                while (await plain.GetStream().ReadAsync(buffer, deadline.Token) > 0)
                {
                }
            }
            catch (IOException)
            {
                // reset: refused
            }
        }
        AwaitCondition(() => _channelB.Refusals(PeerRefusal.Unauthenticated) == 3, Patience);
        Assert.Equal(0, _channelB.FramesDelivered);
    }

    /// <summary>A TLS client presenting <paramref name="certificates"/>; the server must not let its handshake complete.</summary>
    private async Task Connect(X509Certificate2Collection certificates)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(_channelB.Endpoint.Host, _channelB.Endpoint.Port);
        await using var tls = new SslStream(client.GetStream(), false);
        using var deadline = new CancellationTokenSource(Patience);
        try
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "distbp",
                ClientCertificates = certificates,
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            }, deadline.Token);
            // TLS 1.3 may complete the client's side before the server checks the client: the refusal then closes it.
            await tls.WriteAsync(DataChannelHandshake.Hello("akka.tcp://x@127.0.0.1:1", new byte[32]), deadline.Token);
            var buffer = new byte[64];
            while (await tls.ReadAsync(buffer, deadline.Token) > 0)
            {
            }
        }
        catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException)
        {
            // refused during or right after the TLS handshake
        }
    }
}
