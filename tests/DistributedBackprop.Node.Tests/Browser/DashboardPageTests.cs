using System.Net;
using DistributedBackprop.Node.Dashboard;
using DistributedBackprop.Node.Report;
using DistributedBackprop.Node.Tests.Dashboard;
using DistributedBackprop.Node.Tests.EndToEnd;
using Microsoft.Playwright;
using Xunit;

namespace DistributedBackprop.Node.Tests.Browser;

/// <summary>The dashboard page in a real browser, fed by a hand-made run folder that grows while the page is open.</summary>
public sealed class DashboardPageTests(Chromium chromium) : IClassFixture<Chromium>
{
    private static readonly string[] Charts =
    [
        "chart-loss", "chart-accuracy", "chart-throughput", "chart-step-time", "chart-grad-norm", "chart-layer-grad-norms",
        "chart-dead-units", "chart-learning-rate",
    ];

    [ChromiumFact]
    public async Task The_page_draws_a_run_folder_line_by_line_as_it_is_written()
    {
        using var temp = new TempFolder();
        var run = new SampleRun(temp.Path);
        await using var server = await DashboardServer.StartAsync(temp.Path, IPAddress.Loopback, 0, CancellationToken.None);
        await using var watched = await chromium.OpenAsync();
        var page = watched.Page;

        await page.GotoAsync(server.Url.ToString());
        await watched.WaitForAsync("d.status === 'running' && d.steps === 0", "a connected page waiting for the first step");

        run.WriteConfig();
        run.WriteCluster(0, 3);
        for (var step = 1; step <= 30; step++)
        {
            run.AppendStep(step);
        }
        await watched.WaitForAsync("d.steps === 30", "the first 30 steps");
        Assert.Equal(SampleRun.NodeAddresses, await watched.ReadAsync<string[]>("nodes"));
        Assert.Equal(3, await page.Locator("#cluster tr[data-node-address]").CountAsync());
        Assert.Contains("coordinator", await page.Locator("#cluster tr[data-node-address='127.0.0.1:4001']").InnerTextAsync());

        // The page is open while the folder grows: the fault at step 40, an eval at 50, a health warning at 60.
        for (var step = 31; step <= 60; step++)
        {
            run.AppendStep(step);
        }
        await watched.WaitForAsync("d.steps === 60 && d.evals === 1 && d.events.some(e => e.type === 'dead-relu')",
            "steps to 60 with the fault, the eval and the health warning");
        foreach (var chart in Charts)
        {
            Assert.True(await watched.ReadAsync<int>($"chartPoints['{chart}']") > 0, $"{chart} received no points");
        }
        Assert.Equal(SampleRun.NodeAddresses[..2], await watched.ReadAsync<string[]>("nodes"));
        var fault = page.Locator("#event-list li[data-type='worker-lost']");
        Assert.Contains("recovered in 1.02 s", await fault.InnerTextAsync());
        Assert.Contains("a lower --lr, or --activation leaky-relu",
            await page.Locator("#event-list li[data-type='dead-relu'] .ev-fix").InnerTextAsync());
        Assert.Equal("2", await page.GetAttributeAsync("body", "data-nodes"));

        run.WriteSummary(60);
        await watched.WaitForAsync("d.status === 'finished' && d.summary", "the finished run's summary");
        var summary = await page.Locator("#summary-figures").InnerTextAsync();
        Assert.Contains("86.12 %", summary);
        // Bytes per node (sharded aggregation's property, visible in every run).
        Assert.Contains("MB per step · 10.0.0.3:4053", summary);
        Assert.Contains("2.8", summary);

        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Path.GetTempPath(), "dashboard-sample.png"), FullPage = true });

        // The run's process stops serving: the page keeps what it has, says so, and does not try to reconnect.
        await server.DisposeAsync();
        await watched.WaitForAsync("d.status === 'finished'", "the finished run, after the server stopped");
        Assert.Equal(60, await watched.ReadAsync<int>("steps"));
        Assert.True(watched.Errors.Count == 0, string.Join("\n", watched.Errors));
    }

    [ChromiumFact]
    public async Task A_run_whose_process_ends_without_a_summary_shows_as_stopped()
    {
        using var temp = new TempFolder();
        var run = new SampleRun(temp.Path);
        run.WriteConfig();
        run.AppendStep(1);
        var server = await DashboardServer.StartAsync(temp.Path, IPAddress.Loopback, 0, CancellationToken.None);
        await using var watched = await chromium.OpenAsync();
        await watched.Page.GotoAsync(server.Url.ToString());
        await watched.WaitForAsync("d.steps === 1 && d.status === 'running'", "the first step");

        await server.DisposeAsync();

        await watched.WaitForAsync("d.status === 'stopped'", "a stopped run");
        Assert.Contains("stopped without a summary", await watched.Page.Locator("#status-text").InnerTextAsync());
        Assert.True(watched.Errors.Count == 0, string.Join("\n", watched.Errors));
    }

    [ChromiumFact]
    public async Task The_report_page_opens_from_a_file_and_draws_every_chart_without_the_network()
    {
        using var temp = new TempFolder();
        SampleRun.Finished(temp.Folder("run"), steps: 120);
        var html = temp.WriteText("report.html", HtmlReport.Build(RunRecord.Read(temp.File("run")), DateTime.UtcNow));
        await using var watched = await chromium.OpenAsync();

        await watched.Page.GotoAsync(new Uri(html).AbsoluteUri);
        await watched.WaitForAsync("d.steps === 120 && d.status === 'finished'", "the whole finished run");

        foreach (var chart in Charts)
        {
            Assert.True(await watched.ReadAsync<int>($"chartPoints['{chart}']") > 0, $"{chart} received no points");
        }
        Assert.Equal(2, await watched.ReadAsync<int>("evals")); // after epochs 0 and 1 (steps 50 and 100)
        Assert.All(watched.Requests, url => Assert.Matches("^(file|data):", url));
        Assert.True(watched.Errors.Count == 0, string.Join("\n", watched.Errors));
        await watched.Page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Path.GetTempPath(), "dashboard-report.png"), FullPage = true });
    }
}
