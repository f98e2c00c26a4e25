using System.Text.Json;
using System.Text.Json.Nodes;
using DistributedBackprop.Core;
using DistributedBackprop.Core.Runs;
using DistributedBackprop.Node.Dashboard;

namespace DistributedBackprop.Node.Report;

/// <summary>
/// A run folder as read back for <c>distbp report</c>: config.json, every complete line of metrics.jsonl and
/// events.jsonl, and summary.json when the run finished. A folder without config.json and metrics.jsonl is not a run.
/// A line that does not parse is skipped and counted (<see cref="SkippedLines"/>): a writer killed mid-line leaves a
/// fragment that the next writer ends with a newline.
/// </summary>
public sealed record RunRecord(
    string RunDir,
    JsonObject Config,
    IReadOnlyList<JsonObject> Metrics,
    IReadOnlyList<JsonObject> Events,
    JsonObject? Summary,
    int SkippedLines = 0)
{
    /// <summary>
    /// The per-step lines ("kind":"step") by step. A step replayed after a coordinator resumed from a checkpoint is
    /// written again; the later line is the one that counted.
    /// </summary>
    public IEnumerable<JsonObject> Steps => LastPerStep(Metrics.Where(m => Kind(m) is null or "step"));

    /// <summary>The held-out evaluations ("kind":"eval"), by step, the later of a replayed one.</summary>
    public IEnumerable<JsonObject> Evals => LastPerStep(Metrics.Where(m => Kind(m) == "eval"));

    private static IEnumerable<JsonObject> LastPerStep(IEnumerable<JsonObject> lines) =>
        lines.Where(l => l.Number("step") is not null).GroupBy(l => l.Number("step")!.Value).Select(g => g.Last())
            .OrderBy(l => l.Number("step"));

    private static string? Kind(JsonObject line) =>
        line["kind"] is JsonValue value && value.TryGetValue<string>(out var kind) ? kind : null;

    public static RunRecord Read(string runDir)
    {
        if (!Directory.Exists(runDir))
        {
            throw new DistbpInputException(File.Exists(runDir)
                ? $"report: '{runDir}' is a file; give a run folder (runs/<time>-<hash>)."
                : $"report: '{runDir}' does not exist; give a run folder (runs/<time>-<hash>).");
        }
        var files = new RunFiles(runDir);
        var missing = new[] { files.Config, files.Metrics }.Where(path => !File.Exists(path)).Select(Path.GetFileName).ToList();
        if (missing.Count > 0)
        {
            throw new DistbpInputException(
                $"report: '{runDir}' is not a run folder: it has no {string.Join(" and no ", missing)} "
                + "(a run folder holds config.json, metrics.jsonl, events.jsonl and summary.json).");
        }
        var config = ReadObject(files.Config);
        var summary = File.Exists(files.Summary) ? ReadObject(files.Summary) : null;
        var (metrics, skippedMetrics) = ReadLines(files.Metrics);
        var (events, skippedEvents) = ReadLines(files.Events);
        return new RunRecord(files.Directory, config, metrics, events, summary, skippedMetrics + skippedEvents);
    }

    private static JsonObject ReadObject(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                   ?? throw new DistbpInputException($"report: {path} is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new DistbpInputException($"report: {path} is not valid JSON ({e.Message}).");
        }
    }

    /// <summary>Every complete line that is a JSON object (a run stopped mid-write leaves its last line unfinished: left out).</summary>
    private static (List<JsonObject> Lines, int Skipped) ReadLines(string path)
    {
        var lines = new List<JsonObject>();
        var skipped = 0;
        foreach (var line in new JsonLinesTailer(path).ReadNewLines())
        {
            try
            {
                if (JsonNode.Parse(line) is JsonObject parsed)
                {
                    lines.Add(parsed);
                    continue;
                }
            }
            catch (JsonException)
            {
            }
            skipped++;
        }
        return (lines, skipped);
    }
}

/// <summary>Reading numbers out of a run folder's JSON lines, where any of them may be null or missing.</summary>
public static class JsonNumbers
{
    public static double? Number(this JsonObject line, string key) =>
        line[key] is JsonValue value && value.TryGetValue<double>(out var number) && double.IsFinite(number) ? number : null;

    public static double?[] Numbers(this JsonObject line, string key) =>
        line[key] is JsonArray array
            ? array.Select(n => n is JsonValue v && v.TryGetValue<double>(out var d) && double.IsFinite(d) ? d : (double?)null).ToArray()
            : [];

    public static string[] Strings(this JsonObject line, string key) =>
        line[key] is JsonArray array
            ? array.Select(n => n is JsonValue v && v.TryGetValue<string>(out var s) ? s : "").ToArray()
            : [];
}
