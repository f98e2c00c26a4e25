using DistributedBackprop.Core;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Cli;

namespace DistributedBackprop.Node.Commands;

/// <summary>
/// Where a run keeps its checkpoints: by default a fresh folder runs/&lt;UTC time&gt;-&lt;config hash&gt;/checkpoints, so a
/// coordinator that is lost can be replaced without any flag, and <c>--resume DIR</c> continues a stopped run.
/// </summary>
public static class RunFolder
{
    public const int DefaultCheckpointEvery = 100;

    /// <summary>Fills in the default checkpoint folder and interval when the user gave none.</summary>
    public static TrainingOptions WithDefaultCheckpoints(TrainingOptions options, ParsedArguments args)
    {
        var every = args.Has("checkpoint-every") ? options.CheckpointEvery : DefaultCheckpointEvery;
        if (options.CheckpointDir is not null)
        {
            return options with { CheckpointEvery = every };
        }
        var root = Path.Combine("runs", $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{options.ConfigHash()}");
        var folder = root;
        for (var n = 2; Directory.Exists(folder); n++)
        {
            folder = $"{root}-{n}";
        }
        return options with { CheckpointDir = Path.Combine(folder, "checkpoints"), CheckpointEvery = every };
    }

    /// <summary>The options saved in the newest valid checkpoint of <paramref name="dir"/>; the run continues there.</summary>
    public static TrainingOptions ResumeFrom(string dir, ParsedArguments args)
    {
        var allowed = new HashSet<string> { "resume", "workers", "threads", "out", "summary-json", "help" };
        if (TrainingOptionsBinder.Valued.Concat(TrainingOptionsBinder.Switches).FirstOrDefault(o => args.Has(o) && !allowed.Contains(o))
            is { } conflicting)
        {
            throw new DistbpInputException(
                $"--{conflicting}: a resumed run keeps the options it was started with; drop --{conflicting} (only --workers, --threads, --out and --summary-json may change).");
        }
        if (!Directory.Exists(dir))
        {
            throw new DistbpInputException($"--resume: '{dir}' is not a folder; give the checkpoint folder a run printed.");
        }
        foreach (var path in new CheckpointStore(dir).List())
        {
            try
            {
                if (ModelFile.Read(path, "--resume").Header.Options is { } saved)
                {
                    return saved with
                    {
                        CheckpointDir = dir,
                        Workers = args.Int("workers", saved.Workers),
                        Threads = args.Int("threads", saved.Threads),
                    };
                }
            }
            catch (DistbpInputException)
            {
                // A corrupt newest checkpoint is skipped; the coordinator warns about it when it loads.
            }
        }
        throw new DistbpInputException($"--resume: '{dir}' holds no valid checkpoint (checkpoint-*.distbp); nothing to resume.");
    }
}
