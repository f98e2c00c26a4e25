using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;
using Xunit.Abstractions;

namespace DistributedBackprop.Node.Tests.Deploy;

/// <summary>
/// A real network partition: three <c>distbp node</c> processes, each with its own address in its own network namespace
/// (deploy/netns.sh), and one worker node's link taken down mid-run so that it is cut off both ways. The majority keeps
/// training while the link is down, the Split Brain Resolver downs the minority, and the run ends with the fault-free
/// weights. Every wait is on an event (an output line, a process exit) with a deadline; nothing sleeps.
/// </summary>
public sealed class PartitionTests(ITestOutputHelper output)
{
    private static readonly string[] Training = ["--layers", "784-32-10", "--epochs", "3", "--batch", "64", "--slices", "8"];
    private const int CutAtStep = 40;
    private const int MinStepWhileCut = 60;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(150);

    [NetnsFact]
    public void A_worker_cut_off_by_a_link_going_down_is_downed_and_the_majority_finishes_with_the_fault_free_weights()
    {
        using var folder = new TempFolder();
        var oracle = Distbp.Run(["train", .. Training, "--run-dir", folder.File("oracle-run")]);
        Assert.True(oracle.ExitCode == 0, oracle.ToString());

        var prefix = $"dbpp{Environment.ProcessId % 100000}";
        string[] hosts = ["n0", "n1", "n2"];
        var addresses = hosts.Select((_, k) => $"10.231.0.{k + 2}").ToArray();
        var seed = $"akka.tcp://distbp@{addresses[0]}:4053";
        var netns = Path.Combine(PodClusterTests.Root, "deploy", "netns.sh");
        PodClusterTests.Run("bash", [netns, "up", prefix, .. hosts]);
        var nodes = new List<NetnsNode>();
        try
        {
            var started = Stopwatch.StartNew();
            var end = DateTime.UtcNow + Bound;
            string[] NodeArgs(int k) =>
            [
                "node", "--hostname", addresses[k], "--port", "4053", "--min-nodes", "3", "--join-timeout", "60",
                "--report-steps", .. Training, "--checkpoint-dir", folder.File("checkpoints"), "--run-dir", folder.File("run"),
                "--out", folder.File($"{hosts[k]}/model.distbp"), "--summary-json", folder.File($"{hosts[k]}/summary.json"),
                .. k == 0 ? Array.Empty<string>() : ["--seeds", seed],
            ];
            foreach (var host in hosts)
            {
                Directory.CreateDirectory(folder.File(host));
            }

            // The first node founds the cluster; the others join through it, so it is the oldest member and hosts the
            // coordinator singleton.
            nodes.Add(NetnsNode.Start($"{prefix}-{hosts[0]}", PodClusterTests.Dotnet(), [Distbp.DllPath, .. NodeArgs(0)]));
            Assert.True(nodes[0].WaitForLine(l => l.StartsWith("node ", StringComparison.Ordinal) && l.Contains(" started"), end) is not null,
                "the first node did not start\n" + Dump(nodes));
            for (var k = 1; k < hosts.Length; k++)
            {
                nodes.Add(NetnsNode.Start($"{prefix}-{hosts[k]}", PodClusterTests.Dotnet(), [Distbp.DllPath, .. NodeArgs(k)]));
            }
            var coordinator = nodes[0];
            var victim = nodes[2];

            // Mid-run: the coordinator's node reports step 40.
            Assert.True(coordinator.WaitForLine(l => Step(l) >= CutAtStep, end) is not null, "training did not reach step 40\n" + Dump(nodes));
            Assert.All(nodes.Skip(1), n => Assert.DoesNotContain(n.Lines(), l => Step(l) >= 0));
            Assert.All(nodes, n => Assert.False(n.Process.HasExited, Dump(nodes)));

            // Cut the last node off, both ways: its only link goes down.
            var cutAt = coordinator.Lines().Count;
            var stepAtCut = coordinator.Lines().Select(Step).Max();
            PodClusterTests.Run("ip", ["-n", victim.Namespace, "link", "set", "eth0", "down"]);
            output.WriteLine($"{started.Elapsed.TotalSeconds:F1} s: link of {victim.Namespace} down at step {stepAtCut}");

            // While it is cut off, the majority keeps training.
            var target = Math.Max(MinStepWhileCut, stepAtCut + 20);
            var progressed = coordinator.WaitForLine(l => Step(l) >= target, end, from: cutAt);
            Assert.True(progressed is not null, $"no step {target} while the link was down\n{Dump(nodes)}");
            output.WriteLine($"{started.Elapsed.TotalSeconds:F1} s: {progressed} with the link down");

            // The Split Brain Resolver downs the minority side: the cut-off node stops by itself.
            Assert.True(victim.WaitForExit(end), $"the cut-off node did not stop\n{Dump(nodes)}");
            output.WriteLine($"{started.Elapsed.TotalSeconds:F1} s: cut-off node exited {victim.Process.ExitCode}");
            PodClusterTests.Run("ip", ["-n", victim.Namespace, "link", "set", "eth0", "up"]);

            foreach (var node in nodes)
            {
                Assert.True(node.WaitForExit(end), $"{node.Namespace} did not finish within {Bound.TotalSeconds} s\n{Dump(nodes)}");
            }
            output.WriteLine($"{started.Elapsed.TotalSeconds:F1} s: all nodes exited");
            output.WriteLine(Dump(nodes));

            Assert.True(coordinator.Process.ExitCode == 0, Dump(nodes));
            Assert.True(nodes[1].Process.ExitCode == 0, Dump(nodes));
            Assert.True(victim.Process.ExitCode != 0, Dump(nodes));
            // Never two coordinators: one weights line, one summary, one model — all on the first node.
            var printed = nodes.Select(n => n.Lines().Where(l => l.StartsWith("weights_sha256 ", StringComparison.Ordinal))
                .Select(l => l["weights_sha256 ".Length..]).ToList()).ToList();
            Assert.Equal([oracle.WeightsSha256], printed[0]);
            Assert.All(printed.Skip(1), Assert.Empty);
            Assert.True(File.Exists(folder.File("n0/summary.json")));
            Assert.True(File.Exists(folder.File("n0/model.distbp")));
            Assert.All(hosts.Skip(1), h => Assert.False(File.Exists(folder.File($"{h}/summary.json")), $"{h} wrote a summary"));
            Assert.Contains(oracle.WeightsSha256, File.ReadAllText(folder.File("n0/summary.json")));
        }
        finally
        {
            foreach (var node in nodes)
            {
                node.Dispose();
            }
            PodClusterTests.Run("bash", [netns, "down", prefix, .. hosts]);
        }
    }

    /// <summary>N for a "step N" line, -1 otherwise.</summary>
    private static int Step(string line) =>
        Regex.Match(line, "^step ([0-9]+)$") is { Success: true } m ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;

    private static string Dump(List<NetnsNode> nodes) => string.Join("\n", nodes.Select(n => n.Dump()));

    /// <summary>
    /// A process started inside a network namespace whose output lines can be awaited: every line and the exit wake the
    /// waiters, each of which gives up at its deadline.
    /// </summary>
    private sealed class NetnsNode : IDisposable
    {
        private readonly object _gate = new();
        private readonly List<string> _lines = [];
        private int _closedStreams;

        private NetnsNode(string ns, Process process)
        {
            Namespace = ns;
            Process = process;
        }

        public string Namespace { get; }

        public Process Process { get; }

        public static NetnsNode Start(string ns, string file, string[] args)
        {
            var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in (string[])["netns", "exec", ns, file, .. args])
            {
                start.ArgumentList.Add(a);
            }
            var process = new Process { StartInfo = start, EnableRaisingEvents = true };
            var node = new NetnsNode(ns, process);
            process.OutputDataReceived += (_, e) => node.Received(e.Data);
            process.ErrorDataReceived += (_, e) => node.Received(e.Data);
            process.Exited += (_, _) => node.Received(null, exited: true);
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return node;
        }

        private void Received(string? line, bool exited = false)
        {
            lock (_gate)
            {
                if (line is not null)
                {
                    _lines.Add(line);
                }
                else if (!exited)
                {
                    _closedStreams++;
                }
                Monitor.PulseAll(_gate);
            }
        }

        public List<string> Lines()
        {
            lock (_gate)
            {
                return [.. _lines];
            }
        }

        /// <summary>The first line at or after index <paramref name="from"/> that matches; null once the output has ended or at the deadline.</summary>
        public string? WaitForLine(Func<string, bool> match, DateTime deadline, int from = 0)
        {
            lock (_gate)
            {
                for (var next = from; ;)
                {
                    for (; next < _lines.Count; next++)
                    {
                        if (match(_lines[next]))
                        {
                            return _lines[next];
                        }
                    }
                    var left = deadline - DateTime.UtcNow;
                    if (_closedStreams == 2 || left <= TimeSpan.Zero)
                    {
                        return null;
                    }
                    Monitor.Wait(_gate, left);
                }
            }
        }

        public bool WaitForExit(DateTime deadline)
        {
            var left = deadline - DateTime.UtcNow;
            if (!Process.WaitForExit(left > TimeSpan.Zero ? left : TimeSpan.Zero))
            {
                return false;
            }
            Process.WaitForExit(); // the redirected output has been read to its end
            return true;
        }

        public string Dump()
        {
            var state = Process.HasExited ? $"exit {Process.ExitCode}" : "running";
            return $"--- {Namespace} {state}\n{string.Join("\n", Lines().Where(l => Step(l) < 0 || Step(l) % 25 == 0))}";
        }

        public void Dispose()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                Process.WaitForExit();
            }
            Process.Dispose();
        }
    }
}
