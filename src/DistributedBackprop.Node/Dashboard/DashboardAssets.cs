using System.Collections.Concurrent;

namespace DistributedBackprop.Node.Dashboard;

/// <summary>
/// The page's files (Dashboard/wwwroot), embedded in the assembly under "wwwroot/..." so the dashboard and the report
/// need nothing beside the binary and fetch nothing at run time.
/// </summary>
public static class DashboardAssets
{
    public sealed record Asset(byte[] Bytes, string ContentType)
    {
        public string Text => System.Text.Encoding.UTF8.GetString(Bytes);
    }

    // Found files only: the embedded files are few, while the paths a client can ask for are not (a cache of misses
    // once held 40 MB after 5,000 long 404s).
    private static readonly ConcurrentDictionary<string, Asset> Cache = new(StringComparer.Ordinal);

    /// <summary>The file at <paramref name="path"/> under wwwroot ("index.html", "vendor/uplot/uPlot.min.css"), or null.</summary>
    public static Asset? Find(string path)
    {
        if (Cache.TryGetValue(path, out var cached))
        {
            return cached;
        }
        return Load(path) is { } asset ? Cache.GetOrAdd(path, asset) : null;
    }

    /// <summary>Files held in memory (tests: it never exceeds the embedded files).</summary>
    public static int CachedCount => Cache.Count;

    /// <summary>A file the page cannot do without (the report inlines it).</summary>
    public static Asset Get(string path) =>
        Find(path) ?? throw new InvalidOperationException($"the embedded dashboard file wwwroot/{path} is missing from the build");

    private static Asset? Load(string path)
    {
        if (path.Contains("..", StringComparison.Ordinal))
        {
            return null;
        }
        using var stream = typeof(DashboardAssets).Assembly.GetManifestResourceStream("wwwroot/" + path);
        if (stream is null)
        {
            return null;
        }
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return new Asset(bytes, ContentTypeOf(path));
    }

    private static string ContentTypeOf(string path) => Path.GetExtension(path) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        ".svg" => "image/svg+xml",
        _ => "text/plain; charset=utf-8",
    };
}
