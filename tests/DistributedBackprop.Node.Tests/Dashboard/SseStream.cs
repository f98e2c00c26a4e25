using System.Text;
using Xunit;

namespace DistributedBackprop.Node.Tests.Dashboard;

/// <summary>A test's own server-sent-events client: reads GET /events message by message, with deadlines.</summary>
public sealed class SseStream : IDisposable
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private readonly HttpClient _client;
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private SseStream(HttpClient client, HttpResponseMessage response, StreamReader reader)
    {
        _client = client;
        _response = response;
        _reader = reader;
    }

    public string? ContentType => _response.Content.Headers.ContentType?.MediaType;

    public static async Task<SseStream> OpenAsync(Uri dashboard)
    {
        var client = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        var response = await client.GetAsync(new Uri(dashboard, "events"), HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
        return new SseStream(client, response, reader);
    }

    /// <summary>The next message (event name, data); null when the server ended the stream.</summary>
    public async Task<(string Event, string Data)?> NextAsync(CancellationToken cancel)
    {
        string? name = null;
        var data = new StringBuilder();
        while (await _reader.ReadLineAsync(cancel) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Length > 0)
                {
                    return (name ?? "message", data.ToString());
                }
                name = null;
                continue;
            }
            if (line.StartsWith(':') || line.StartsWith("retry:", StringComparison.Ordinal))
            {
                continue;
            }
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line["event: ".Length..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                data.Append(data.Length > 0 ? "\n" : "").Append(line["data: ".Length..]);
            }
        }
        return null;
    }

    /// <summary>Reads messages until one satisfies <paramref name="last"/>; fails the test at the deadline or at the stream's end.</summary>
    public async Task<List<(string Event, string Data)>> ReadUntilAsync(Func<(string Event, string Data), bool> last, string what)
    {
        using var deadline = new CancellationTokenSource(Deadline);
        var read = new List<(string, string)>();
        try
        {
            while (await NextAsync(deadline.Token) is { } message)
            {
                read.Add(message);
                if (last(message))
                {
                    return read;
                }
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"no {what} within {Deadline}; read {read.Count} messages: {string.Join(" | ", read.TakeLast(5))}");
        }
        Assert.Fail($"the stream ended before {what}; read {read.Count} messages");
        return read;
    }

    public void Dispose()
    {
        _reader.Dispose();
        _response.Dispose();
        _client.Dispose();
    }
}
