using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using DistributedBackprop.Core;
using DistributedBackprop.Node.Dashboard;
using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;

namespace DistributedBackprop.Node.Tests.Dashboard;

public sealed class DashboardServerTests
{
    private static Task<DashboardServer> Start(string runDir) =>
        DashboardServer.StartAsync(runDir, IPAddress.Loopback, 0, CancellationToken.None);

    private static int Step((string Event, string Data) message) =>
        message.Event == FeedMessage.Metric && JsonNode.Parse(message.Data)!["kind"]!.GetValue<string>() == "step"
            ? JsonNode.Parse(message.Data)!["step"]!.GetValue<int>()
            : -1;

    [Fact]
    public async Task Events_stream_sends_everything_so_far_then_each_new_line_as_it_is_written()
    {
        using var temp = new TempFolder();
        var run = new SampleRun(temp.Path);
        run.WriteConfig();
        for (var step = 1; step <= 5; step++)
        {
            run.AppendStep(step);
        }
        await using var server = await Start(temp.Path);
        using var stream = await SseStream.OpenAsync(server.Url);
        Assert.Equal("text/event-stream", stream.ContentType);

        var history = await stream.ReadUntilAsync(m => Step(m) == 5, "step 5 of the history");
        Assert.Equal("hello", history[0].Event);
        Assert.Equal(temp.Path, JsonNode.Parse(history[0].Data)!["run_dir"]!.GetValue<string>());
        Assert.Equal(FeedMessage.Config, history[1].Event);
        Assert.Equal([1, 2, 3, 4, 5], history.Select(Step).Where(s => s > 0));

        run.AppendStep(6);
        var live = await stream.ReadUntilAsync(m => Step(m) == 6, "step 6, appended after the page connected");
        Assert.Single(live);

        run.WriteCluster(6, 3);
        var cluster = await stream.ReadUntilAsync(m => m.Event == FeedMessage.RunEvent, "the cluster snapshot");
        Assert.Equal(3, JsonNode.Parse(cluster[^1].Data)!["nodes"]!.AsArray().Count);
    }

    [Fact]
    public async Task Requests_for_missing_files_hold_no_memory()
    {
        using var temp = new TempFolder();
        await using var server = await Start(temp.Path);
        using var http = new HttpClient { Timeout = SseStream.Deadline };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(server.Url)).StatusCode);
        var cached = DashboardAssets.CachedCount;
        for (var i = 0; i < 200; i++)
        {
            var missing = await http.GetAsync(new Uri(server.Url, $"nothing/{i}/{new string('x', 2000)}"));
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }
        Assert.Equal(cached, DashboardAssets.CachedCount);
    }

    [Fact]
    public async Task Event_streams_past_the_cap_are_turned_away_and_a_closed_one_frees_its_place()
    {
        using var temp = new TempFolder();
        SampleRun.Finished(temp.Path, steps: 2);
        await using var server = await Start(temp.Path);
        var streams = new List<SseStream>();
        try
        {
            for (var i = 0; i < RunFeed.MaxSubscribers; i++)
            {
                var stream = await SseStream.OpenAsync(server.Url);
                streams.Add(stream);
                await stream.ReadUntilAsync(m => m.Event == "hello", "the hello");
            }
            using var http = new HttpClient { Timeout = SseStream.Deadline };
            var refused = await http.GetAsync(new Uri(server.Url, "events"));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);

            streams[0].Dispose();
            streams.RemoveAt(0);
            // The server notices the closed stream at its next write (a heartbeat at the latest): then one more fits.
            var deadline = DateTime.UtcNow + SseStream.Deadline;
            while (true)
            {
                try
                {
                    streams.Add(await SseStream.OpenAsync(server.Url));
                    break;
                }
                catch (HttpRequestException e) when (e.StatusCode == HttpStatusCode.ServiceUnavailable && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(100);
                }
            }
            await streams[^1].ReadUntilAsync(m => m.Event == "hello", "the hello");
        }
        finally
        {
            streams.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task A_page_that_connects_before_the_run_folder_is_known_gets_it_once_followed()
    {
        using var temp = new TempFolder();
        SampleRun.Finished(temp.Path, steps: 3);
        await using var server = await DashboardServer.StartAsync(IPAddress.Loopback, 0, CancellationToken.None);
        var opening = SseStream.OpenAsync(server.Url);

        server.Follow(temp.Path);
        using var stream = await opening.WaitAsync(SseStream.Deadline);
        var messages = await stream.ReadUntilAsync(m => m.Event == FeedMessage.Summary, "the summary");
        Assert.Equal("hello", messages[0].Event);
        Assert.Equal([1, 2, 3], messages.Select(Step).Where(s => s > 0));
    }

    [Fact]
    public async Task A_line_still_being_written_is_streamed_only_once_complete()
    {
        using var temp = new TempFolder();
        var metrics = temp.WriteText("metrics.jsonl", "{\"kind\":\"step\",\"step\":1}\n{\"kind\":\"step\",\"st");
        await using var server = await Start(temp.Path);
        using var stream = await SseStream.OpenAsync(server.Url);
        await stream.ReadUntilAsync(m => Step(m) == 1, "step 1");

        File.AppendAllText(metrics, "ep\":2}\n{\"kind\":\"step\",\"step\":3}\n");
        var next = await stream.ReadUntilAsync(m => Step(m) == 3, "step 3");
        Assert.Equal([2, 3], next.Select(Step));
        Assert.All(next, m => JsonDocument.Parse(m.Data).Dispose());

        // A writer killed mid-line leaves a fragment that the next writer ends with a newline: it is skipped.
        File.AppendAllText(metrics, "{\"kind\":\"step\",\"st\n{\"kind\":\"step\",\"step\":4}\n");
        Assert.Equal([4], (await stream.ReadUntilAsync(m => Step(m) == 4, "step 4 after the fragment")).Select(Step));
    }

    [Fact]
    public async Task A_page_that_connects_late_gets_the_whole_history_in_order()
    {
        using var temp = new TempFolder();
        var run = SampleRun.Finished(temp.Path, steps: 60);
        await using var server = await Start(temp.Path);
        using var stream = await SseStream.OpenAsync(server.Url);

        var all = await stream.ReadUntilAsync(m => m.Event == FeedMessage.Summary, "the summary");
        Assert.Equal(Enumerable.Range(1, 60), all.Select(Step).Where(s => s > 0));
        Assert.Equal(run.EventsWritten, all.Count(m => m.Event == FeedMessage.RunEvent));
        Assert.Equal(run.EvalsWritten, all.Count(m => m.Event == FeedMessage.Metric && m.Data.Contains("\"eval\"")));
    }

    [Fact]
    public async Task Stopping_the_server_sends_the_summary_written_last_then_ends_the_stream()
    {
        using var temp = new TempFolder();
        var run = new SampleRun(temp.Path);
        run.WriteConfig();
        run.AppendStep(1);
        var server = await Start(temp.Path);
        using var stream = await SseStream.OpenAsync(server.Url);
        await stream.ReadUntilAsync(m => Step(m) == 1, "step 1");

        run.AppendStep(2);
        run.WriteSummary(2);
        await server.DisposeAsync();

        using var deadline = new CancellationTokenSource(SseStream.Deadline);
        var rest = new List<(string Event, string Data)>();
        while (await stream.NextAsync(deadline.Token) is { } message)
        {
            rest.Add(message);
        }
        Assert.Contains(rest, m => Step(m) == 2);
        Assert.Equal(FeedMessage.Summary, rest[^2].Event);
        Assert.Equal("end", rest[^1].Event); // the page does not reconnect
    }

    [Fact]
    public async Task The_page_its_script_and_uplot_are_served_from_the_assembly()
    {
        using var temp = new TempFolder();
        await using var server = await Start(temp.Path);
        using var http = new HttpClient { BaseAddress = server.Url };

        var page = await http.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("vendor/uplot/uPlot.iife.min.js", html);
        Assert.DoesNotContain("http://", html.Replace("http://www.w3.org", ""));
        Assert.DoesNotContain("https://", html);

        foreach (var (path, type) in new[]
                 {
                     ("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css"),
                     ("/vendor/uplot/uPlot.iife.min.js", "text/javascript"), ("/vendor/uplot/uPlot.min.css", "text/css"),
                 })
        {
            using var response = await http.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.OK, path);
            Assert.Equal(type, response.Content.Headers.ContentType?.MediaType);
        }
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/nothing-here.js")).StatusCode);
    }

    [Fact]
    public async Task A_port_in_use_is_bad_input_naming_the_option()
    {
        using var temp = new TempFolder();
        var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        try
        {
            var port = ((IPEndPoint)taken.LocalEndpoint).Port;
            var error = await Assert.ThrowsAsync<DistbpInputException>(() =>
                DashboardServer.StartAsync(temp.Path, IPAddress.Loopback, port, CancellationToken.None));
            Assert.StartsWith("--dashboard:", error.Message);
            Assert.Contains($"{port}", error.Message);
        }
        finally
        {
            taken.Stop();
        }
    }
}
