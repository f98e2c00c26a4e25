using System.Net;
using System.Text.Json.Nodes;
using DistributedBackprop.Node.Dashboard;

namespace DistributedBackprop.Node.Report;

/// <summary>
/// The dashboard page as one self-contained file: its style, uPlot and script inlined, the run's lines embedded as
/// <c>window.DISTBP_RUN</c>. It opens from file:// with no server and no network.
/// </summary>
public static class HtmlReport
{
    public static string Build(RunRecord run, DateTime generatedUtc)
    {
        var data = new JsonObject
        {
            ["run_dir"] = run.RunDir,
            ["generated_utc"] = generatedUtc.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", System.Globalization.CultureInfo.InvariantCulture),
            ["config"] = run.Config.DeepClone(),
            ["metrics"] = new JsonArray(run.Metrics.Select(m => m.DeepClone()).ToArray()),
            ["events"] = new JsonArray(run.Events.Select(e => e.DeepClone()).ToArray()),
            ["summary"] = run.Summary?.DeepClone(),
        };
        var page = DashboardAssets.Get("index.html").Text;
        page = Inline(page, "<title>distbp dashboard</title>",
            $"<title>distbp report: {WebUtility.HtmlEncode(Path.GetFileName(run.RunDir))}</title>");
        page = Inline(page, """<link rel="stylesheet" href="vendor/uplot/uPlot.min.css">""",
            Style(DashboardAssets.Get("vendor/uplot/uPlot.min.css").Text));
        page = Inline(page, """<link rel="stylesheet" href="dashboard.css">""", Style(DashboardAssets.Get("dashboard.css").Text));
        page = Inline(page, """<script src="vendor/uplot/uPlot.iife.min.js"></script>""",
            Script(DashboardAssets.Get("vendor/uplot/uPlot.iife.min.js").Text));
        // The default JSON writer escapes <, > and & as \u003C..., so the data cannot end the script element early.
        page = Inline(page, """<script src="dashboard.js"></script>""",
            Script("window.DISTBP_RUN = " + data.ToJsonString() + ";") + "\n" + Script(DashboardAssets.Get("dashboard.js").Text));
        return page;
    }

    private static string Inline(string page, string tag, string replacement) => page.Contains(tag, StringComparison.Ordinal)
        ? page.Replace(tag, replacement, StringComparison.Ordinal)
        : throw new InvalidOperationException($"the embedded index.html no longer holds {tag}; update HtmlReport");

    private static string Style(string css) => "<style>\n" + css.Replace("</style", "<\\/style", StringComparison.OrdinalIgnoreCase) + "\n</style>";

    private static string Script(string js) => "<script>\n" + js.Replace("</script", "<\\/script", StringComparison.OrdinalIgnoreCase) + "\n</script>";
}
