using System.Net;
using System.Text;
using System.Text.Json;
using DistributedBackprop.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace DistributedBackprop.Node.Dashboard;

/// <summary>
/// The live dashboard: one page (GET /, its script, style and uPlot, all embedded in the assembly) and the run
/// folder's feed pushed as server-sent events (GET /events: the history on connect, then each new line).
/// It binds its port first (a port in use fails the command before anything is written) and follows the run folder
/// once the command knows it (<see cref="Follow"/>); a page that connects before then waits.
/// </summary>
public sealed class DashboardServer : IAsyncDisposable, IDisposable
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>A comment line this often keeps proxies from closing an idle stream and notices a browser gone.</summary>
    private static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(15);

    private readonly WebApplication _app;
    private readonly TaskCompletionSource<RunFeed> _feed;
    private readonly CancellationTokenSource _stopping = new();
    private Task _polling = Task.CompletedTask;
    private int _disposed;

    private DashboardServer(WebApplication app, TaskCompletionSource<RunFeed> feed, Uri url)
    {
        _app = app;
        _feed = feed;
        Url = url;
    }

    public Uri Url { get; }

    /// <summary>The run folder's feed; null until <see cref="Follow"/>.</summary>
    public RunFeed? Feed => _feed.Task.IsCompletedSuccessfully ? _feed.Task.Result : null;

    /// <summary>Listens on <paramref name="address"/>:<paramref name="port"/> (0: any free port); a port in use is bad input.</summary>
    public static async Task<DashboardServer> StartAsync(IPAddress address, int port, CancellationToken cancel)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(address, port));
        var app = builder.Build();
        var feed = new TaskCompletionSource<RunFeed>(TaskCreationOptions.RunContinuationsAsynchronously);

        app.MapGet("/", () => Asset("index.html"));
        app.MapGet("/events", (HttpContext http) => StreamAsync(http, feed.Task));
        app.MapGet("/{**path}", (string path) => Asset(path));
        try
        {
            await app.StartAsync(cancel);
        }
        catch (IOException e)
        {
            await app.DisposeAsync();
            var reason = e.InnerException?.Message ?? e.Message;
            throw new DistbpInputException(
                $"--dashboard: cannot listen on {address}:{port} ({reason.TrimEnd('.')}); pick another port, or 0 for any free one.");
        }
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new DashboardServer(app, feed, new Uri(bound.TrimEnd('/') + "/"));
    }

    /// <summary>Starts and at once follows <paramref name="runDir"/>.</summary>
    public static async Task<DashboardServer> StartAsync(string runDir, IPAddress address, int port, CancellationToken cancel)
    {
        var server = await StartAsync(address, port, cancel);
        server.Follow(runDir);
        return server;
    }

    /// <summary>Serves <paramref name="runDir"/> from now on (the folder and its files may not exist yet).</summary>
    public void Follow(string runDir)
    {
        var feed = new RunFeed(runDir);
        if (!_feed.TrySetResult(feed))
        {
            throw new InvalidOperationException("the dashboard already follows a run folder");
        }
        _polling = feed.PollUntilCancelledAsync(PollInterval, _stopping.Token);
    }

    private static IResult Asset(string path) => DashboardAssets.Find(path) is { } asset
        ? Results.Bytes(asset.Bytes, asset.ContentType)
        : Results.NotFound();

    /// <summary>GET /events: "hello" (the page starts afresh), every message so far, then each new one as it comes.</summary>
    /// A stream ends when the browser goes or when the feed completes (the server is stopping, after its last poll).
    private static async Task StreamAsync(HttpContext http, Task<RunFeed> followed)
    {
        http.Response.ContentType = "text/event-stream; charset=utf-8";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        var cancel = http.RequestAborted;
        var body = http.Response.Body;
        try
        {
            var feed = await followed.WaitAsync(cancel);
            using var subscription = feed.Subscribe();
            if (subscription is null)
            {
                http.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                http.Response.ContentType = "text/plain; charset=utf-8";
                await http.Response.WriteAsync($"{RunFeed.MaxSubscribers} browsers follow this run already; try again later.\n", cancel);
                return;
            }
            var hello = JsonSerializer.Serialize(new Dictionary<string, string> { ["run_dir"] = feed.RunDir });
            var opening = new StringBuilder("retry: 2000\n\n");
            AppendEvent(opening, new FeedMessage("hello", hello));
            foreach (var message in subscription.History)
            {
                AppendEvent(opening, message);
            }
            await WriteAsync(body, opening, cancel);
            while (true)
            {
                bool more;
                using (var wait = CancellationTokenSource.CreateLinkedTokenSource(cancel))
                {
                    wait.CancelAfter(Heartbeat);
                    try
                    {
                        more = await subscription.Live.WaitToReadAsync(wait.Token);
                    }
                    catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                    {
                        await WriteAsync(body, new StringBuilder(": heartbeat\n\n"), cancel);
                        continue;
                    }
                }
                if (!more)
                {
                    // The server is stopping: the feed has said everything it will. "end" tells the page not to reconnect.
                    await WriteAsync(body, new StringBuilder("event: end\ndata: {}\n\n"), cancel);
                    return;
                }
                var batch = new StringBuilder();
                while (subscription.Live.TryRead(out var message))
                {
                    AppendEvent(batch, message);
                }
                await WriteAsync(body, batch, cancel);
            }
        }
        catch (OperationCanceledException)
        {
            // The browser went away.
        }
        catch (IOException)
        {
            // The connection broke mid-write.
        }
    }

    private static void AppendEvent(StringBuilder text, FeedMessage message) =>
        text.Append("event: ").Append(message.Event).Append("\ndata: ").Append(message.Data).Append("\n\n");

    private static async Task WriteAsync(Stream body, StringBuilder text, CancellationToken cancel)
    {
        await body.WriteAsync(Encoding.UTF8.GetBytes(text.ToString()), cancel);
        await body.FlushAsync(cancel);
    }

    /// <summary>Reads the folder one last time (so open pages see the summary), ends every stream, stops listening.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        await _stopping.CancelAsync();
        try
        {
            await _polling;
        }
        catch (OperationCanceledException)
        {
        }
        if (Feed is { } feed)
        {
            feed.Poll();
            // The streams send what the last poll found, then end; stopping waits for them (a stuck one, 5 s at most).
            feed.Complete();
        }
        else
        {
            _feed.TrySetCanceled(); // pages waiting for a run folder that never came
        }
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(deadline.Token);
        await _app.DisposeAsync();
        _stopping.Dispose();
    }

    /// <summary>For the synchronous commands: <c>using var dashboard = ...</c>.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
