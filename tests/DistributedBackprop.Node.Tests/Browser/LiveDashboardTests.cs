using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DistributedBackprop.Node.Tests.EndToEnd;
using Microsoft.Playwright;
using Xunit;

namespace DistributedBackprop.Node.Tests.Browser;

/// <summary>
/// The dashboard during a real run: <c>distbp simulate</c> with three node processes and a node killed by --chaos,
/// watched from Chromium while it trains.
/// </summary>
public sealed partial class LiveDashboardTests(Chromium chromium) : IClassFixture<Chromium>
{
    private static readonly TimeSpan RunDeadline = TimeSpan.FromMinutes(4);

    [GeneratedRegex(@"^dashboard (http://\S+)", RegexOptions.Multiline)]
    private static partial Regex DashboardLine();

    [GeneratedRegex(@"node akka\.[a-z.]+://distbp@([0-9.]+:[0-9]+) started", RegexOptions.Multiline)]
    private static partial Regex NodeStarted();

    [ChromiumFact]
    public async Task A_simulated_cluster_with_a_killed_node_shows_live_on_the_dashboard()
    {
        using var temp = new TempFolder();
        var runDir = temp.File("run");
        var logDir = temp.File("logs");
        using var distbp = RunningDistbp.Start(temp.Path,
            "simulate", "--nodes", "3", "--layers", "784-32-10", "--epochs", "4", "--batch", "64", "--slices", "8",
            "--checkpoint-every", "50", "--chaos", "kill:node-2@150", "--dashboard", "0", "--run-dir", runDir,
            "--log-dir", logDir);
        distbp.WaitUntil(() => DashboardLine().IsMatch(distbp.Stdout), TimeSpan.FromSeconds(60), "the dashboard's address");
        var url = DashboardLine().Match(distbp.Stdout).Groups[1].Value;

        await using var watched = await chromium.OpenAsync();
        await watched.Page.GotoAsync(url);
        await watched.WaitForAsync("d.status === 'running' && d.steps > 0 && d.nodes.length === 3",
            "the running job's first steps on three nodes", RunDeadline);

        // The node list is the cluster: three of the nodes the launcher started (a respawned node has a new port).
        var started = Directory.GetFiles(logDir, "node-*.log")
            .SelectMany(log => NodeStarted().Matches(File.ReadAllText(log)).Select(m => m.Groups[1].Value)).ToHashSet();
        var shown = await watched.ReadAsync<string[]>("nodes");
        Assert.Equal(3, shown.Distinct().Count());
        Assert.All(shown, address => Assert.Contains(address, started));
        Assert.Equal(3, await watched.Page.Locator("#cluster tr[data-node-address]").CountAsync());

        // The injected fault: node-2 (as it was first started) lost, in the event list while the job runs on. The
        // coordinator reports it first as silent (it stopped answering), then as lost once the failure detector fires;
        // a short run may end between the two.
        var killed = NodeStarted().Match(File.ReadAllText(Path.Combine(logDir, "node-2.log"))).Groups[1].Value;
        await watched.WaitForAsync(
            $"d.events.some(e => e.kind === 'fault' && (e.type === 'worker-lost' || e.type === 'worker-silent') && (e.node || '').endsWith('@{killed}'))",
            $"the fault injected with --chaos (node-2, {killed}, silent or lost)", RunDeadline);
        Assert.True(await watched.Page.Locator("#event-list li.fault[data-type='worker-lost'], #event-list li.fault[data-type='worker-silent']")
            .CountAsync() > 0);

        var run = distbp.WaitForExit(RunDeadline);
        Assert.True(run.ExitCode == 0, run.ToString());
        await watched.WaitForAsync("d.status === 'finished'", "the finished run's summary");

        var stepLines = File.ReadLines(Path.Combine(runDir, "metrics.jsonl"))
            .Count(line => JsonNode.Parse(line)!["kind"]!.GetValue<string>() == "step");
        Assert.Equal(stepLines, await watched.ReadAsync<int>("steps"));
        foreach (var chart in new[] { "chart-loss", "chart-accuracy", "chart-throughput", "chart-step-time", "chart-grad-norm",
                     "chart-layer-grad-norms", "chart-dead-units", "chart-learning-rate" })
        {
            Assert.True(await watched.ReadAsync<int>($"chartPoints['{chart}']") > 0, $"{chart} received no points");
        }
        Assert.True(await watched.ReadAsync<int>("evals") >= 4, "an eval line per epoch");
        await watched.Page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Path.GetTempPath(), "dashboard.png"), FullPage = true });
        Assert.True(watched.Errors.Count == 0, string.Join("\n", watched.Errors));
    }
}
