using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;

namespace DistributedBackprop.Node.Tests.Deploy;

/// <summary>
/// DISTBP_TLS_CERTIFICATE switches Akka remoting and the data channel to TLS (akka.ssl.tcp) with validation on: two
/// nodes holding a certificate their trust store (SSL_CERT_FILE) accepts train together, their tensors on a TLS data
/// channel; a node without TLS, or with a certificate the store does not trust, cannot join them.
/// </summary>
public sealed class RemotingTlsTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task Nodes_with_a_trusted_certificate_train_over_tls_and_a_plain_or_untrusted_node_is_refused()
    {
        using var untrustedKey = RSA.Create(2048);
        using var untrusted = new CertificateRequest("CN=127.0.0.1", untrustedKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            .CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var pfx = _temp.Write("node.pfx", certificate.Export(X509ContentType.Pkcs12, "secret"));
        var trust = _temp.WriteText("ca.pem", certificate.ExportCertificatePem());

        var port = FreePort();
        var common = new Dictionary<string, string>
        {
            ["DISTBP_LAYERS"] = "784-16-10",
            ["DISTBP_EPOCHS"] = "1",
            ["DISTBP_MIN_NODES"] = "2",
            ["DISTBP_JOIN_TIMEOUT"] = "20",
            ["SSL_CERT_FILE"] = trust,
            ["DISTBP_RUN_DIR"] = _temp.File("run"),
        };
        var tls = new Dictionary<string, string>(common)
        {
            ["DISTBP_TLS_CERTIFICATE"] = pfx,
            ["DISTBP_TLS_CERTIFICATE_PASSWORD"] = "secret",
            ["DISTBP_SEEDS"] = $"akka.ssl.tcp://distbp@127.0.0.1:{port}",
            ["DISTBP_CLUSTER_SECRET"] = "a secret the TLS nodes share",
            // Info, so the data channel's connections show in the output.
            ["DISTBP_LOG_LEVEL"] = "INFO",
        };
        // A node with a certificate of its own, which the others' trust store does not hold.
        var stranger = new Dictionary<string, string>(tls)
        {
            ["DISTBP_TLS_CERTIFICATE"] = _temp.Write("stranger.pfx", untrusted.Export(X509ContentType.Pkcs12, "secret")),
            ["DISTBP_JOIN_TIMEOUT"] = "5",
            ["DISTBP_LOG_LEVEL"] = "WARNING",
        };

        // A plain node pointed at the TLS seed never gets in.
        var plain = new Dictionary<string, string>(common)
        {
            ["DISTBP_SEEDS"] = $"akka.tcp://distbp@127.0.0.1:{port}",
            ["DISTBP_JOIN_TIMEOUT"] = "5",
        };
        using var seed = Start(tls, "--port", port.ToString());
        var seedStdout = seed.StandardOutput.ReadToEndAsync();
        var refused = Run(plain);
        Assert.True(refused.ExitCode == 2, refused.ToString());
        var untrustedRun = Run(stranger);
        Assert.True(untrustedRun.ExitCode == 2, untrustedRun.ToString());

        var joiner = Run(tls);
        if (!seed.WaitForExit(Distbp.Deadline))
        {
            seed.Kill(entireProcessTree: true);
        }
        seed.WaitForExit();
        var seedOutput = await seedStdout;
        Assert.True(joiner.ExitCode == 0, joiner.ToString());
        Assert.True(seed.ExitCode == 0, seedOutput);
        Assert.Contains($"node akka.ssl.tcp://distbp@127.0.0.1:{port} started", seedOutput);
        Assert.Contains("weights_sha256 ", seedOutput);
        // The tensors took the data channel (over TLS: the channel runs over TLS whenever the node has a certificate).
        Assert.Contains("data channel: connected to", seedOutput + joiner.Stdout);
    }

    private static Process Start(Dictionary<string, string> env, params string[] args)
    {
        var start = new ProcessStartInfo(Dotnet()) { RedirectStandardOutput = true, RedirectStandardError = false, UseShellExecute = false };
        start.ArgumentList.Add(Distbp.DllPath);
        start.ArgumentList.Add("node");
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        foreach (var (name, value) in env)
        {
            start.Environment[name] = value;
        }
        return Process.Start(start)!;
    }

    private static DistbpRun Run(Dictionary<string, string> env)
    {
        var start = new ProcessStartInfo(Dotnet()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Distbp.DllPath);
        start.ArgumentList.Add("node");
        foreach (var (name, value) in env)
        {
            start.Environment[name] = value;
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(Distbp.Deadline))
        {
            process.Kill(entireProcessTree: true);
        }
        process.WaitForExit();
        return new DistbpRun(process.ExitCode, stdout.Result, stderr.Result);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string Dotnet() =>
        Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self
        : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
}
