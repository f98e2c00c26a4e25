using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using DistributedBackprop.Cluster.Transport;
using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>
/// A real cluster of <c>distbp node</c> processes under the pods' heap limit, and this test as a process that is no
/// member: it floods every port it can reach (idle sockets, length-prefix bombs and forged senders after a well-formed
/// hello, garbage, replayed handshakes, 404s, event streams). Each attack is refused, counted in /metrics and logged; the
/// node holds no more memory than a small bound; the job ends with the fault-free weights.
/// </summary>
[Collection(SoakCollection.Name)]
public sealed partial class HostilePeerTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(3);
    private static readonly string[] Job = ["--layers", "784-64-10", "--epochs", "20", "--seed", "5"];
    private const long MemoryBound = 100L << 20;

    [Fact]
    public async Task A_flooding_stranger_changes_nothing_and_every_attack_is_counted()
    {
        using var temp = new TempFolder();
        var oracle = Distbp.RunIn(temp.Path, ["train", "--workers", "2", .. Job]);
        Assert.True(oracle.ExitCode == 0, oracle.ToString());

        var calm = await RunCluster(temp.File("calm"), attack: false);
        var attacked = await RunCluster(temp.File("attacked"), attack: true);

        Assert.Equal(oracle.WeightsSha256, calm.WeightsSha256);
        Assert.Equal(oracle.WeightsSha256, attacked.WeightsSha256);
        var counts = string.Join(", ", attacked.Refusals.Select(c => $"{c.Key} {c.Value}"));
        Assert.True(attacked.Refusals.GetValueOrDefault("handshake-timeout") >= 20, counts);
        Assert.True(attacked.Refusals.GetValueOrDefault("unauthenticated") >= 22, counts);
        Assert.Empty(calm.Refusals);
        Assert.Contains("data channel: refused", attacked.Log);
        output.WriteLine($"seed peak RSS: calm run {calm.PeakRss >> 20} MB, attacked run {attacked.PeakRss >> 20} MB; " +
                         $"refusals after the first round: {counts}");
        Assert.True(attacked.PeakRss - calm.PeakRss < MemoryBound,
            $"the seed peaked {(attacked.PeakRss - calm.PeakRss) >> 20} MB above its calm run ({calm.PeakRss >> 20} MB)");
    }

    private sealed record ClusterRun(string WeightsSha256, long PeakRss, Dictionary<string, double> Refusals, string Log);

    /// <summary>
    /// Two nodes under the pods' heap limit. With <paramref name="attack"/>, round one floods the seed before the job
    /// starts (it waits for a second member), each attack until the seed closes it; round two floods while the job runs.
    /// </summary>
    private static async Task<ClusterRun> RunCluster(string folder, bool attack)
    {
        Directory.CreateDirectory(folder);
        var (port, dataPort, httpPort) = (RunningDistbp.ClosedPort(), RunningDistbp.ClosedPort(), RunningDistbp.ClosedPort());
        var seed = $"akka.tcp://distbp@127.0.0.1:{port}";
        var environment = new Dictionary<string, string>
        {
            ["DOTNET_GCHeapHardLimit"] = "0x30000000",
            ["DISTBP_CLUSTER_SECRET"] = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)),
        };
        using var first = RunningDistbp.StartWithEnvironment(folder, environment,
            ["node", "--port", $"{port}", "--data-port", $"{dataPort}", "--http-port", $"{httpPort}", "--seeds", seed,
             "--min-nodes", "2", "--run-dir", Path.Combine(folder, "run"), .. Job]);
        first.WaitUntil(() => first.Stdout.Contains(" started"), Deadline, "'node ... started'");
        var metrics = new Uri($"http://127.0.0.1:{httpPort}/metrics");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        await WaitForMetrics(http, metrics);
        // A well-formed hello that names the seed itself (a member), and a proof this process cannot make.
        var hello = DataChannelHandshake.Hello(seed, new byte[DataChannelHandshake.NonceBytes]);
        var noProof = new byte[DataChannelHandshake.ProofBytes];
        if (attack)
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            // Idle sockets: closed at the handshake timeout.
            var idle = Enumerable.Range(0, 20).Select(_ => Refused(dataPort, [], deadline.Token)).ToList();
            // Length-prefix bombs of 256 MiB behind the hello.
            var bombs = Enumerable.Range(0, 20).Select(_ => Refused(dataPort, [.. hello, .. noProof, .. Prefix(256 << 20)], deadline.Token));
            // A frame (a forged sender's) behind a replayed handshake; garbage to the data channel and to remoting.
            var forged = Refused(dataPort, [.. hello, .. noProof, .. Prefix(64), .. new byte[64]], deadline.Token);
            var garbage = Refused(dataPort, Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), deadline.Token);
            var remoting = Enumerable.Range(0, 5).Select(_ => Refused(port, new byte[4096], deadline.Token));
            // The HTTP port: long 404s.
            for (var i = 0; i < 100; i++)
            {
                await http.GetAsync(new Uri($"http://127.0.0.1:{httpPort}/{new string('x', 4000)}/{i}"), deadline.Token);
            }
            await Task.WhenAll([.. idle, .. bombs, forged, garbage, .. remoting]);
        }
        var refusals = await Counts(http, metrics);

        using var second = RunningDistbp.StartWithEnvironment(folder, environment,
            ["node", "--port", "0", "--seeds", seed, "--min-nodes", "2", "--run-dir", Path.Combine(folder, "run"), .. Job]);
        using var stop = new CancellationTokenSource();
        var flood = !attack ? Task.CompletedTask : Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.WhenAll(Enumerable.Range(0, 8).Select(_ =>
                    Refused(dataPort, [.. hello, .. noProof, .. Prefix(1 << 28)], stop.Token)));
            }
        });
        var peak = 0L;
        while (!first.HasExited)
        {
            peak = Math.Max(peak, RunningDistbp.ResidentBytes(first.Pid) ?? 0);
            first.WaitForExitOrTimeout(TimeSpan.FromMilliseconds(200));
        }
        await stop.CancelAsync();
        await flood.ContinueWith(_ => { }, TaskScheduler.Default);
        var seedRun = first.WaitForExit(Deadline);
        var joinerRun = second.WaitForExit(Deadline);
        Assert.True(seedRun.ExitCode == 0, seedRun.ToString());
        Assert.True(joinerRun.ExitCode == 0, joinerRun.ToString());
        return new ClusterRun(seedRun.WeightsSha256, peak, refusals, seedRun.Stdout + seedRun.Stderr);
    }

    private static byte[] Prefix(int length)
    {
        var prefix = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(prefix, length);
        return prefix;
    }

    /// <summary>Connects, sends <paramref name="bytes"/>, and waits until the node closes the connection.</summary>
    private static async Task Refused(int port, byte[] bytes, CancellationToken cancel)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync("127.0.0.1", port, cancel);
            var stream = client.GetStream();
            await stream.WriteAsync(bytes, cancel);
            var buffer = new byte[4096];
            while (await stream.ReadAsync(buffer, cancel) > 0)
            {
            }
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            // Reset by the node: refused.
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            // The flood was told to stop.
        }
    }

    private static async Task WaitForMetrics(HttpClient http, Uri metrics)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            try
            {
                await http.GetStringAsync(metrics);
                return;
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>distbp_peer_refusals_total by reason, from the node's /metrics.</summary>
    private static async Task<Dictionary<string, double>> Counts(HttpClient http, Uri metrics)
    {
        var text = await http.GetStringAsync(metrics);
        return RefusalLine().Matches(text).ToDictionary(m => m.Groups[1].Value, m => double.Parse(m.Groups[2].Value,
            System.Globalization.CultureInfo.InvariantCulture));
    }

    [GeneratedRegex("""^distbp_peer_refusals_total\{reason="([a-z-]+)"\} (\S+)$""", RegexOptions.Multiline)]
    private static partial Regex RefusalLine();
}
