using DistributedBackprop.Core;

namespace DistributedBackprop.Node.Commands;

/// <summary>
/// <c>distbp probe [URL]</c>: GETs one of a node's endpoints, prints the body and exits 0 when the answer is 2xx, 1 when
/// it is not. The container image has no curl; its HEALTHCHECK and the tests use this. Without a URL it asks the node
/// configured by this environment (DISTBP_HOSTNAME, DISTBP_HTTP_PORT) whether it is alive.
/// </summary>
public static class ProbeCommand
{
    public static int Run(IReadOnlyList<string> argv)
    {
        if (argv.Count > 1 || argv is ["--help"])
        {
            Console.WriteLine("usage: distbp probe [http://HOST:PORT/healthz/live]");
            return argv is ["--help"] ? 0 : 2;
        }
        var url = argv.Count == 1 ? argv[0] : DefaultUrl();
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            throw new DistbpInputException($"probe: '{url}' is not an http:// URL.");
        }
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = client.GetAsync(uri).GetAwaiter().GetResult();
            Console.Write(response.Content.ReadAsStringAsync().GetAwaiter().GetResult());
            Console.WriteLine();
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            Console.Error.WriteLine($"distbp: probe {uri}: {e.Message}");
            return 1;
        }
    }

    private static string DefaultUrl()
    {
        var host = Environment.GetEnvironmentVariable("DISTBP_HTTP_HOSTNAME") is { Length: > 0 } h ? h
            : Environment.GetEnvironmentVariable("DISTBP_HOSTNAME") is { Length: > 0 } n ? n : "127.0.0.1";
        if (host is "0.0.0.0" or "::" or "[::]")
        {
            host = "127.0.0.1";
        }
        var port = Environment.GetEnvironmentVariable("DISTBP_HTTP_PORT") is { Length: > 0 } p ? p : "8080";
        return $"http://{host}:{port}/healthz/live";
    }
}
