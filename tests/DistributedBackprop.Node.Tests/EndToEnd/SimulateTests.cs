using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>
/// <c>distbp simulate</c> and <c>distbp node</c> as real OS processes on loopback: the same weights as one process,
/// no process left behind, and clear refusals. One class, so these multi-process runs never overlap each other.
/// </summary>
public sealed partial class SimulateTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    private static readonly string[] SmallJob =
        ["--layers", "784-32-10", "--epochs", "1", "--batch", "240", "--slices", "6", "--seed", "7"];

    [Fact]
    public void Simulate_three_nodes_gives_the_same_weights_as_one_process()
    {
        using var temp = new TempFolder();
        var summaryPath = temp.File("out/summary.json");
        var modelPath = temp.File("out/model.distbp");
        var simulated = Distbp.RunIn(temp.Path,
            ["simulate", "--nodes", "3", .. SmallJob, "--summary-json", summaryPath, "--out", modelPath,
             "--log-dir", temp.File("logs")]);
        Assert.True(simulated.ExitCode == 0, simulated + NodeLogs(temp.File("logs")));
        var oneWorker = Distbp.RunIn(temp.Path, ["train", "--workers", "1", .. SmallJob]);
        Assert.True(oneWorker.ExitCode == 0, oneWorker.ToString());
        var threeWorkers = Distbp.RunIn(temp.Path, ["train", "--workers", "3", .. SmallJob]);
        Assert.True(threeWorkers.ExitCode == 0, threeWorkers.ToString());

        Assert.Matches("^[0-9a-f]{64}$", oneWorker.WeightsSha256);
        Assert.Equal(oneWorker.WeightsSha256, threeWorkers.WeightsSha256);
        Assert.True(oneWorker.WeightsSha256 == simulated.WeightsSha256, simulated + NodeLogs(temp.File("logs")));

        using var summary = JsonDocument.Parse(File.ReadAllText(summaryPath));
        Assert.Equal(3, summary.RootElement.GetProperty("nodes").GetInt32());
        Assert.Equal(3, summary.RootElement.GetProperty("workers").GetInt32());
        Assert.Equal(simulated.WeightsSha256, summary.RootElement.GetProperty("weights_sha256").GetString());
        Assert.True(File.Exists(modelPath));
        Assert.Empty(Directory.GetFiles(temp.File("out"), "*.tmp"));
        // One display: the coordinator's epoch and result lines once each, whichever node printed them.
        Assert.True(simulated.StdoutLines.Count(l => l.StartsWith("epoch 1/1 ", StringComparison.Ordinal)) == 1, simulated.ToString());
        Assert.True(simulated.StdoutLines.Count(l => l.StartsWith("test accuracy ", StringComparison.Ordinal)) == 1, simulated.ToString());
        for (var k = 0; k < 3; k++)
        {
            Assert.Contains(" started", File.ReadAllText(temp.File($"logs/node-{k}.log")));
        }
    }

    [Fact]
    public void Simulate_writes_the_run_folder_it_names_whichever_node_hosts_the_coordinator()
    {
        using var temp = new TempFolder();
        var runDir = temp.File("my-run");
        var summaryPath = temp.File("out/summary.json");
        var run = Distbp.RunIn(temp.Path,
            ["simulate", "--nodes", "2", .. SmallJob, "--run-dir", runDir, "--summary-json", summaryPath, "--log-dir", temp.File("logs")]);
        Assert.True(run.ExitCode == 0, run + NodeLogs(temp.File("logs")));
        Assert.Equal(runDir, RunFolderTests.PrintedRunFolder(run));

        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(runDir, "config.json"))).RootElement;
        Assert.Equal("simulate", config.GetProperty("command").GetString());
        Assert.Equal(2, config.GetProperty("nodes").GetInt32());
        Assert.Equal(File.ReadAllBytes(summaryPath), File.ReadAllBytes(Path.Combine(runDir, "summary.json")));
        Assert.True(File.Exists(Path.Combine(runDir, "model.distbp")));
        using var summary = JsonDocument.Parse(File.ReadAllText(summaryPath));
        var steps = summary.RootElement.GetProperty("steps").GetInt64();
        var metrics = RunFolderTests.Lines(Path.Combine(runDir, "metrics.jsonl"));
        Assert.Equal(Enumerable.Range(0, (int)steps).Select(s => (long)s),
            metrics.Where(l => (string?)l["kind"] == "step").Select(l => (long)l["step"]!));
        Assert.Single(metrics, l => (string?)l["kind"] == "eval");
        // Both nodes' workers computed slices, and the events saw both nodes, one of them hosting the coordinator.
        Assert.Equal(2, metrics.Last(l => (string?)l["kind"] == "step")["slices"]!.AsObject().Count);
        var cluster = RunFolderTests.Lines(Path.Combine(runDir, "events.jsonl")).Last(e => (string?)e["kind"] == "cluster");
        Assert.Equal(2, cluster["nodes"]!.AsArray().Count);
        Assert.Single(cluster["nodes"]!.AsArray(), n => (bool)n!["coordinator"]!);
        // The nodes were told where to write: no node made a default run folder of its own.
        Assert.False(Directory.Exists(temp.File("runs")));
    }

    [Fact]
    public void Simulate_leaves_no_process_behind_after_ctrl_c()
    {
        using var temp = new TempFolder();
        var logs = temp.File("logs");
        using var launcher = RunningDistbp.Start(temp.Path,
            ["simulate", "--nodes", "2", "--layers", "784-32-10", "--epochs", "200", "--log-dir", logs]);
        string Log(int k) => File.Exists(Path.Combine(logs, $"node-{k}.log"))
            ? ReadShared(Path.Combine(logs, $"node-{k}.log")) : "";
        launcher.WaitUntil(() => Log(0).Contains(" started") && Log(1).Contains(" started"), Deadline,
            "node started in both logs");
        var pids = Enumerable.Range(0, 2).Select(k => int.Parse(PidLine().Match(Log(k)).Groups[1].Value)).ToArray();
        Assert.All(pids, pid => Assert.True(RunningDistbp.IsAlive(pid), $"node pid {pid} is not running"));

        var clock = Stopwatch.StartNew();
        launcher.Signal(RunningDistbp.SIGINT);
        var run = launcher.WaitForExit(Deadline);
        Assert.True(run.ExitCode == 130, run.ToString());
        Assert.Contains("interrupted", run.Stderr);
        // The launcher waits for its nodes; a short deadline covers a slow reaper.
        while (pids.Any(RunningDistbp.IsAlive) && clock.Elapsed < Deadline)
        {
            Thread.Sleep(100);
        }
        Assert.True(!pids.Any(RunningDistbp.IsAlive), $"node processes still alive: {string.Join(", ", pids.Where(RunningDistbp.IsAlive))}");
    }

    [Fact]
    public void Node_with_unreachable_seeds_exits_2_after_its_join_timeout()
    {
        using var temp = new TempFolder();
        var port = RunningDistbp.ClosedPort();
        var clock = Stopwatch.StartNew();
        var run = Distbp.RunIn(temp.Path,
            ["node", "--seeds", $"akka.tcp://distbp@127.0.0.1:{port}", "--join-timeout", "3", .. SmallJob]);
        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(60));
        var last = run.StderrLines[^1];
        Assert.StartsWith("distbp: --seeds: could not join the cluster", last);
        Assert.Contains($"127.0.0.1:{port}", last);
    }

    [Fact]
    public void Node_started_with_other_options_is_refused_and_the_job_waits_for_a_matching_one()
    {
        using var temp = new TempFolder();
        var port = RunningDistbp.ClosedPort();
        var seed = $"akka.tcp://distbp@127.0.0.1:{port}";
        using var first = RunningDistbp.Start(temp.Path,
            ["node", "--port", $"{port}", "--seeds", seed, "--min-nodes", "2", "--lr", "0.1", .. SmallJob]);
        try
        {
            first.WaitUntil(() => first.Stdout.Contains(" started"), Deadline, "'node ... started'");
            var joiner = Distbp.RunIn(temp.Path,
                ["node", "--port", "0", "--seeds", seed, "--min-nodes", "2", "--lr", "0.2", .. SmallJob]);
            Assert.True(joiner.ExitCode == 2, joiner.ToString());
            var last = joiner.StderrLines[^1];
            Assert.StartsWith("distbp: ", last);
            Assert.Contains("differ from the coordinator's", last);
            Assert.Contains("same options", last);

            // The refused node never counted towards --min-nodes: the job waits for a node that matches, then runs.
            Assert.DoesNotContain("epoch ", first.Stdout);
            var matching = Distbp.RunIn(temp.Path,
                ["node", "--port", "0", "--seeds", seed, "--min-nodes", "2", "--lr", "0.1", .. SmallJob]);
            Assert.True(matching.ExitCode == 0, matching.ToString());
            var seedRun = first.WaitForExit(Deadline);
            Assert.True(seedRun.ExitCode == 0, seedRun.ToString());
            Assert.Single(seedRun.StdoutLines, l => l.StartsWith("weights_sha256 ", StringComparison.Ordinal));
        }
        finally
        {
            if (RunningDistbp.IsAlive(first.Pid))
            {
                first.Signal(RunningDistbp.SIGTERM);
            }
            first.WaitForExit(Deadline);
        }
    }

    [Fact]
    public void Node_of_another_cluster_name_cannot_join()
    {
        using var temp = new TempFolder();
        var port = RunningDistbp.ClosedPort();
        using var first = RunningDistbp.Start(temp.Path,
            ["node", "--port", $"{port}", "--seeds", $"akka.tcp://distbp@127.0.0.1:{port}", "--min-nodes", "2", .. SmallJob]);
        try
        {
            first.WaitUntil(() => first.Stdout.Contains(" started"), Deadline, "'node ... started'");
            // Same options, same address, but another actor system (cluster) name: Akka refuses the join.
            var stranger = Distbp.RunIn(temp.Path,
            [
                "node", "--cluster-name", "other", "--port", "0", "--seeds", $"akka.tcp://other@127.0.0.1:{port}",
                "--min-nodes", "2", "--join-timeout", "5", .. SmallJob,
            ]);
            Assert.True(stranger.ExitCode == 2, stranger.ToString());
            Assert.StartsWith("distbp: --seeds: could not join the cluster", stranger.StderrLines[^1]);
            Assert.DoesNotContain("epoch ", first.Stdout);
        }
        finally
        {
            if (RunningDistbp.IsAlive(first.Pid))
            {
                first.Signal(RunningDistbp.SIGTERM);
            }
            first.WaitForExit(Deadline);
        }
    }

    [Fact]
    public void Node_on_a_port_in_use_exits_2_naming_the_port()
    {
        using var temp = new TempFolder();
        var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        try
        {
            var port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;
            var run = Distbp.RunIn(temp.Path, ["node", "--port", $"{port}", .. SmallJob]);
            Assert.True(run.ExitCode == 2, run.ToString());
            Assert.StartsWith($"distbp: --port: cannot listen on 127.0.0.1:{port}", run.StderrLines[^1]);
            Assert.DoesNotContain("internal error", run.Stderr);
        }
        finally
        {
            taken.Stop();
        }
    }

    [Theory]
    [InlineData("--nodes", "--nodes", "0")]
    [InlineData("--nodes", "--layers", "784-32-10", "--nodes", "x")]
    [InlineData("--layers", "--nodes", "2", "--layers", "5-10")]
    [InlineData("--slices", "--nodes", "2", "--batch", "250", "--slices", "6")]
    public void Simulate_with_bad_options_starts_no_node(string names, params string[] args)
    {
        using var temp = new TempFolder();
        var logs = temp.File("logs");
        var run = Distbp.RunIn(temp.Path, ["simulate", .. args, "--log-dir", logs]);
        BadInput.Check(run, names);
        Assert.False(Directory.Exists(logs), $"a bad simulate created {logs}; {run}");
        Assert.Equal("", run.Stdout);
    }

    internal static string NodeLogs(string folder) => !Directory.Exists(folder) ? "" : string.Concat(
        Directory.GetFiles(folder, "node-*.log").Order().Select(f => $"\n--- {Path.GetFileName(f)}\n{ReadShared(f)}"));

    /// <summary>Reads a file another process is still writing.</summary>
    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    [GeneratedRegex(@"^# pid (\d+)$", RegexOptions.Multiline)]
    private static partial Regex PidLine();
}
