using System.Text.Json;
using System.Threading.Channels;
using DistributedBackprop.Core.Runs;

namespace DistributedBackprop.Node.Dashboard;

/// <summary>One message for the browser: an SSE event name and one line of JSON.</summary>
public sealed record FeedMessage(string Event, string Data)
{
    public const string Config = "config";
    public const string Metric = "metric";
    public const string RunEvent = "event";
    public const string Summary = "summary";
}

/// <summary>
/// Everything a run folder has said so far, and what it says next: metrics.jsonl and events.jsonl line by line,
/// config.json and summary.json whenever they (re)appear. It reads only the folder, so the same feed serves
/// <c>train</c> (its own folder), <c>node</c> and <c>simulate</c> (a folder other processes write).
/// A new subscriber gets the whole history first, then every new message, with nothing missed or repeated.
/// </summary>
public sealed class RunFeed
{
    private readonly JsonLinesTailer _metrics;
    private readonly JsonLinesTailer _events;
    private readonly WholeFile _config;
    private readonly WholeFile _summary;
    private readonly object _gate = new();
    private readonly List<FeedMessage> _history = [];
    private readonly List<Channel<FeedMessage>> _subscribers = [];
    private bool _completed;

    /// <summary>Browsers following at once; one more is turned away (the server answers 503).</summary>
    public const int MaxSubscribers = 32;

    /// <summary>Messages queued for one browser; one that falls this far behind is cut off (its page reconnects and
    /// starts afresh from the history), so a stalled client holds a bounded amount.</summary>
    public const int MaxQueuedPerSubscriber = 10_000;

    public RunFeed(string runDir)
    {
        var files = new RunFiles(runDir);
        RunDir = files.Directory;
        _metrics = new JsonLinesTailer(files.Metrics);
        _events = new JsonLinesTailer(files.Events);
        _config = new WholeFile(files.Config);
        _summary = new WholeFile(files.Summary);
    }

    public string RunDir { get; }

    /// <summary>A subscriber's view: the history at the moment it subscribed, then the live messages.</summary>
    public sealed record Subscription(IReadOnlyList<FeedMessage> History, ChannelReader<FeedMessage> Live) : IDisposable
    {
        internal Action? Unsubscribe { get; init; }

        public void Dispose() => Unsubscribe?.Invoke();
    }

    /// <summary>A new subscription, or null when <see cref="MaxSubscribers"/> browsers follow already.</summary>
    public Subscription? Subscribe()
    {
        var channel = Channel.CreateBounded<FeedMessage>(new BoundedChannelOptions(MaxQueuedPerSubscriber)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then says false, and Publish cuts the subscriber off
        });
        lock (_gate)
        {
            if (_subscribers.Count >= MaxSubscribers)
            {
                return null;
            }
            if (_completed)
            {
                channel.Writer.TryComplete();
            }
            else
            {
                _subscribers.Add(channel);
            }
            return new Subscription(_history.ToArray(), channel.Reader)
            {
                Unsubscribe = () =>
                {
                    lock (_gate)
                    {
                        _subscribers.Remove(channel);
                    }
                },
            };
        }
    }

    /// <summary>Reads what the folder gained since the last poll and hands it to every subscriber.</summary>
    public void Poll()
    {
        // config first: the page needs it to label the charts of the lines that follow.
        if (_config.ReadIfChanged() is { } config)
        {
            Publish(new FeedMessage(FeedMessage.Config, config));
        }
        foreach (var line in _metrics.ReadNewLines().Where(IsJsonObject))
        {
            Publish(new FeedMessage(FeedMessage.Metric, line));
        }
        foreach (var line in _events.ReadNewLines().Where(IsJsonObject))
        {
            Publish(new FeedMessage(FeedMessage.RunEvent, line));
        }
        if (_summary.ReadIfChanged() is { } summary)
        {
            Publish(new FeedMessage(FeedMessage.Summary, summary));
        }
    }

    /// <summary>Polls every <paramref name="interval"/> until cancelled (reading files is cheap; browsers never poll).</summary>
    public async Task PollUntilCancelledAsync(TimeSpan interval, CancellationToken cancel)
    {
        using var timer = new PeriodicTimer(interval);
        do
        {
            Poll();
        }
        while (await timer.WaitForNextTickAsync(cancel).ConfigureAwait(false));
    }

    /// <summary>Ends every subscriber's stream (the server is stopping); later subscribers get the history only.</summary>
    public void Complete()
    {
        lock (_gate)
        {
            _completed = true;
            foreach (var subscriber in _subscribers)
            {
                subscriber.Writer.TryComplete();
            }
            _subscribers.Clear();
        }
    }

    private void Publish(FeedMessage message)
    {
        lock (_gate)
        {
            _history.Add(message);
            foreach (var subscriber in _subscribers.ToList())
            {
                if (!subscriber.Writer.TryWrite(message))
                {
                    subscriber.Writer.TryComplete(); // too far behind: its stream ends and the page reconnects
                    _subscribers.Remove(subscriber);
                }
            }
        }
    }

    /// <summary>A line the browser can parse; anything else (a corrupt line) is left out rather than break the page.</summary>
    private static bool IsJsonObject(string line)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            return document.RootElement.ValueKind == JsonValueKind.Object;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>A JSON file written whole (atomically): its text, on one line, each time it changes.</summary>
    private sealed class WholeFile(string path)
    {
        private string? _last;

        public string? ReadIfChanged()
        {
            string text;
            try
            {
                text = File.ReadAllText(path);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                return null;
            }
            string compact;
            try
            {
                using var document = JsonDocument.Parse(text);
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                {
                    return null;
                }
                // SSE data must be one line: re-serialise the (possibly indented) file compactly.
                compact = JsonSerializer.Serialize(document.RootElement);
            }
            catch (JsonException)
            {
                return null;
            }
            if (compact == _last)
            {
                return null;
            }
            _last = compact;
            return compact;
        }
    }
}
