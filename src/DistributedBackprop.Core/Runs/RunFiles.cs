using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DistributedBackprop.Core.Kernels;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Core.Runs;

/// <summary>
/// The files of one run folder (issue 6's layout): config.json, metrics.jsonl, events.jsonl, checkpoints/,
/// summary.json and model.distbp. A folder "holds a run" once its config.json exists; config.json is created
/// exclusively, so two processes can never both claim one folder.
/// </summary>
public sealed class RunFiles(string directory)
{
    public string Directory { get; } = Path.GetFullPath(directory);
    public string Config => Path.Combine(Directory, "config.json");
    public string Metrics => Path.Combine(Directory, "metrics.jsonl");
    public string Events => Path.Combine(Directory, "events.jsonl");
    public string Checkpoints => Path.Combine(Directory, "checkpoints");
    public string Summary => Path.Combine(Directory, "summary.json");
    public string Model => Path.Combine(Directory, "model.distbp");

    public bool HoldsRun => File.Exists(Config);

    /// <summary>Writes config.json unless the folder already holds one; false when it did (someone else's run).</summary>
    public bool TryCreateConfig(JsonObject config)
    {
        System.IO.Directory.CreateDirectory(Directory);
        try
        {
            using var stream = new FileStream(Config, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
            stream.Write(System.Text.Encoding.UTF8.GetBytes(config.ToJsonString(Indented) + "\n"));
            return true;
        }
        catch (IOException) when (File.Exists(Config))
        {
            return false;
        }
    }

    /// <summary>The saved config.json, or null when there is none or it does not parse.</summary>
    public JsonObject? ReadConfig()
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(Config)) as JsonObject;
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>When the run started (config.json's started_utc): elapsed_s counts from there, across resumes.</summary>
    public DateTime? StartedUtc() =>
        ReadConfig()?["started_utc"]?.GetValue<string>() is { } text
        && DateTime.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal,
            out var started)
            ? started
            : null;

    /// <summary>The config hash of the run this folder holds, or null.</summary>
    public string? ConfigHash() => ReadConfig()?["config_hash"]?.GetValue<string>();

    /// <summary>config.json: the resolved training options plus what ran them.</summary>
    public static JsonObject Describe(TrainingOptions o, string command, int workers, int nodes, DateTime startedUtc) => new()
    {
        ["command"] = command,
        ["config_hash"] = o.ConfigHash(),
        ["kernel"] = KernelInfo.Name,
        ["started_utc"] = startedUtc.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture),
        ["workers"] = workers,
        ["nodes"] = nodes,
        ["clip"] = o.Clip,
        ["data"] = o.DataPath is null ? "embedded:fashion-mnist-sample" : Path.GetFullPath(o.DataPath),
        ["layers"] = o.Layers,
        ["activation"] = o.Activation,
        ["loss"] = o.Loss,
        ["optimizer"] = o.Optimizer,
        ["lr"] = o.LearningRate,
        ["momentum"] = o.Momentum,
        ["batch"] = o.Batch,
        ["slices"] = o.Slices,
        ["epochs"] = o.Epochs,
        ["dropout"] = o.Dropout,
        ["batch_norm"] = o.BatchNorm,
        ["seed"] = o.Seed,
        ["warmup"] = o.WarmupSteps,
        ["decay"] = o.Decay,
        ["decay_every"] = o.DecayEvery,
        ["decay_factor"] = o.DecayFactor,
        ["threads"] = o.Threads,
        ["aggregation"] = o.Aggregation,
        ["checkpoint_dir"] = o.CheckpointDir is null ? null : Path.GetFullPath(o.CheckpointDir),
        ["checkpoint_every"] = o.CheckpointEvery,
    };

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}
