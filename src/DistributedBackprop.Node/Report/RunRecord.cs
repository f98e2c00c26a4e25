using System.Text.Json;
using System.Text.Json.Nodes;
using DistributedBackprop.Core;
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
        var missing = new[] { RunFolderFiles.Config, RunFolderFiles.Metrics }
            .Where(name => !File.Exists(Path.Combine(runDir, name))).ToList();
        if (missing.Count > 0)
        {
            throw new DistbpInputException(
                $"report: '{runDir}' is not a run folder: it has no {string.Join(" and no ", missing)} "
                + $"(a run folder holds {RunFolderFiles.Config}, {RunFolderFiles.Metrics}, {RunFolderFiles.Events} and {RunFolderFiles.Summary}).");
        }
        var config = ReadObject(runDir, RunFolderFiles.Config)!;
        var summary = File.Exists(Path.Combine(runDir, RunFolderFiles.Summary)) ? ReadObject(runDir, RunFolderFiles.Summary) : null;
        return new RunRecord(Path.GetFullPath(runDir), config, ReadLines(runDir, RunFolderFiles.Metrics),
            ReadLines(runDir, RunFolderFiles.Events), summary);
    }

    private static JsonObject? ReadObject(string runDir, string name)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, name))) as JsonObject
                   ?? throw new DistbpInputException($"report: {Path.Combine(runDir, name)} is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new DistbpInputException($"report: {Path.Combine(runDir, name)} is not valid JSON ({e.Message}).");
        }
    }

    /// <summary>Every complete line (a run stopped mid-write leaves its last line unfinished; that one is left out).</summary>
    private static List<JsonObject> ReadLines(string runDir, string name)
    {
        var path = Path.Combine(runDir, name);
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
