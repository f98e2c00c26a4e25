using System.Text.Json;
using System.Text.Json.Nodes;
using DistributedBackprop.Core;
using DistributedBackprop.Core.Runs;
using DistributedBackprop.Node.Dashboard;

namespace DistributedBackprop.Node.Report;

/// <summary>
/// A run folder as read back for <c>distbp report</c>: config.json, every complete line of metrics.jsonl and
/// events.jsonl, and summary.json when the run finished. A folder without config.json and metrics.jsonl is not a run.
/// </summary>
public sealed record RunRecord(
    string RunDir,
    JsonObject Config,
    IReadOnlyList<JsonObject> Metrics,
    IReadOnlyList<JsonObject> Events,
    JsonObject? Summary)
{
    /// <summary>The per-step lines ("kind":"step"), in file order.</summary>
    public IEnumerable<JsonObject> Steps => Metrics.Where(m => Kind(m) is null or "step");

    /// <summary>The held-out evaluations ("kind":"eval").</summary>
    public IEnumerable<JsonObject> Evals => Metrics.Where(m => Kind(m) == "eval");

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
        return new RunRecord(files.Directory, config, ReadLines(files.Metrics), ReadLines(files.Events), summary);
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

    /// <summary>Every complete line (a run stopped mid-write leaves its last line unfinished; that one is left out).</summary>
    private static List<JsonObject> ReadLines(string path)
    {
        var lines = new List<JsonObject>();
        var number = 0;
        foreach (var line in new JsonLinesTailer(path).ReadNewLines())
        {
            number++;
            try
            {
                lines.Add(JsonNode.Parse(line) as JsonObject
                          ?? throw new DistbpInputException($"report: {path} line {number} is not a JSON object."));
            }
            catch (JsonException e)
            {
                throw new DistbpInputException($"report: {path} line {number} is not valid JSON ({e.Message}).");
            }
        }
        return lines;
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
