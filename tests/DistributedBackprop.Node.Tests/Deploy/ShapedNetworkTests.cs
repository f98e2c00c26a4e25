using System.Text.Json;
using System.Text.RegularExpressions;
using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;

namespace DistributedBackprop.Node.Tests.Deploy;

/// <summary>
/// Four <c>distbp node</c> processes with sharded aggregation, one network namespace each (deploy/netns.sh), every link
/// shaped to 1 Gbit/s with tc tbf as bench/scaling.sh shapes it: the weights are those of one process, and the busiest
/// node moves at most 1.15 × a ring all-reduce's bytes, 4(N−1)/N · M per step.
/// </summary>
public sealed class ShapedNetworkTests
{
    [NetnsFact]
    public void Four_sharded_nodes_on_shaped_links_give_the_weights_of_one_process_within_the_ring_bound()
    {
        using var folder = new TempFolder();
        string[] work = ["--epochs", "1", "--batch", "256", "--slices", "8", "--checkpoint-every", "100000", "--threads", "1"];
        var oracle = Distbp.Run(["train", "--workers", "1", .. work, "--run-dir", folder.File("oracle-run")]);
        Assert.True(oracle.ExitCode == 0, oracle.ToString());

        var prefix = $"dbps{Environment.ProcessId % 100000}";
        string[] hosts = ["n0", "n1", "n2", "n3"];
        var secret = folder.File("cluster-secret");
        File.WriteAllText(secret, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        var summary = folder.File("summary.json");
        PodClusterTests.Run("bash", [Path.Combine(PodClusterTests.Root, "deploy", "netns.sh"), "up", prefix, .. hosts]);
        var nodes = new List<NamespacedProcess>();
        try
        {
            Shape(prefix, hosts.Length, "1gbit");
            for (var k = 0; k < hosts.Length; k++)
            {
                string[] seeds = k == 0 ? [] : ["--seeds", "akka.tcp://distbp@10.231.0.2:4053"];
                nodes.Add(NamespacedProcess.Start($"{prefix}-{hosts[k]}", PodClusterTests.Dotnet(),
                [
                    Distbp.DllPath, "node", "--hostname", $"10.231.0.{k + 2}", "--port", "4053", .. seeds, "--min-nodes", "4",
                    "--workers", "4", "--aggregation", "sharded", "--cluster-secret-file", secret, .. work,
                    "--run-dir", folder.File("run"), "--summary-json", summary,
                ]));
            }
            foreach (var node in nodes)
            {
                Assert.True(node.Process.WaitForExit(TimeSpan.FromMinutes(3)), $"{node.Name} did not finish\n{NamespacedProcess.Dump(nodes)}");
            }
            Assert.All(nodes, n => Assert.True(n.Process.ExitCode == 0, NamespacedProcess.Dump(nodes)));
            var printed = nodes.Select(n => Regex.Match(n.Output.ToString(), "weights_sha256 ([0-9a-f]{64})"))
                .Where(m => m.Success).Select(m => m.Groups[1].Value).Distinct().ToList();
            Assert.Equal([oracle.WeightsSha256], printed);

            using var document = JsonDocument.Parse(File.ReadAllText(summary));
            const double m = 4.0 * 235_146;
            var busiest = document.RootElement.GetProperty("busiest_node_bytes_per_step").GetDouble();
            Assert.InRange(busiest, 0.95 * 3 * m, 1.15 * 3 * m); // 4(N−1)/N · M = 3 M at N = 4
        }
        finally
        {
            foreach (var node in nodes.Where(n => !n.Process.HasExited))
            {
                node.Process.Kill(entireProcessTree: true);
            }
            PodClusterTests.Run("bash", [Path.Combine(PodClusterTests.Root, "deploy", "netns.sh"), "down", prefix, .. hosts]);
        }
    }

    /// <summary>tbf on both ends of every namespace's link (its eth0, and its veth in the hub), as bench/scaling.sh does.</summary>
    private static void Shape(string prefix, int count, string rate)
    {
        for (var k = 0; k < count; k++)
        {
            PodClusterTests.Run("ip", ["netns", "exec", $"{prefix}-n{k}", "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
                "rate", rate, "burst", "256kb", "latency", "50ms"]);
        }
        var links = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ip", ["-n", $"{prefix}-hub", "-o", "link", "show"])
        {
            RedirectStandardOutput = true,
        })!;
        var veths = Regex.Matches(links.StandardOutput.ReadToEnd(), @"(dbp\d+h\d+)@").Select(v => v.Groups[1].Value).ToList();
        links.WaitForExit();
        Assert.Equal(count, veths.Count);
        foreach (var veth in veths)
        {
            PodClusterTests.Run("ip", ["netns", "exec", $"{prefix}-hub", "tc", "qdisc", "replace", "dev", veth, "root", "tbf",
                "rate", rate, "burst", "256kb", "latency", "50ms"]);
        }
    }
}
