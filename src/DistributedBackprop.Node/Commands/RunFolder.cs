using DistributedBackprop.Core;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Runs;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Cli;

namespace DistributedBackprop.Node.Commands;

/// <summary>
/// Where a run keeps its files (<see cref="RunFiles"/>): <c>--run-dir DIR</c>, or by default a fresh folder
/// runs/&lt;UTC time&gt;-&lt;config hash&gt; (-2, -3 ... when taken). A folder that holds a run is never reused for a new one;
/// <c>--resume DIR</c> continues a stopped run in its own folder. Checkpoints go to RUN_DIR/checkpoints unless
/// <c>--checkpoint-dir</c> says otherwise, so a coordinator that is lost can be replaced without any flag.
/// </summary>
public static class RunFolder
{
    public const int DefaultCheckpointEvery = 100;

    /// <summary>A run resumed from its checkpoints; <see cref="RunDir"/> is null for a bare checkpoint folder (a new run folder is made).</summary>
    public sealed record Resumed(TrainingOptions Options, string? RunDir);

    /// <summary>The checkpoint interval of a fresh run: --checkpoint-every, else every 100 steps.</summary>
    public static TrainingOptions WithDefaultCheckpointEvery(TrainingOptions options, ParsedArguments args) =>
        options with { CheckpointEvery = args.Has("checkpoint-every") ? options.CheckpointEvery : DefaultCheckpointEvery };

    /// <summary>Fails early (before any data is read) when --run-dir cannot take a new run.</summary>
    public static void CheckFree(string? runDir)
    {
        if (runDir is null)
        {
            return;
        }
        if (File.Exists(runDir))
        {
            throw new DistbpInputException($"--run-dir: '{runDir}' is a file; give a folder.");
        }
        if (new RunFiles(runDir).HoldsRun)
        {
            throw AlreadyHoldsARun(runDir);
        }
    }

    /// <summary>
    /// Creates the run folder of a new run (train, simulate) with its config.json: <paramref name="runDir"/>, or a
    /// default name not yet taken. Creating config.json exclusively claims the folder, so two runs never share one.
    /// </summary>
    public static (TrainingOptions Options, string RunDir) Create(TrainingOptions options, string? runDir, string command,
        int nodes)
    {
        if (runDir is not null)
        {
            CheckFree(runDir);
            var resolved = WithCheckpointsIn(options, runDir);
            if (!new RunFiles(runDir).TryCreateConfig(RunFiles.Describe(resolved, command, resolved.Workers, nodes, DateTime.UtcNow)))
            {
                throw AlreadyHoldsARun(runDir);
            }
            return (resolved, Path.GetFullPath(runDir));
        }
        var root = DefaultName(options);
        for (var n = 1; ; n++)
        {
            var folder = n == 1 ? root : $"{root}-{n}";
            if (Directory.Exists(folder) || File.Exists(folder))
            {
                continue;
            }
            var resolved = WithCheckpointsIn(options, folder);
            if (new RunFiles(folder).TryCreateConfig(RunFiles.Describe(resolved, command, resolved.Workers, nodes, DateTime.UtcNow)))
            {
                return (resolved, Path.GetFullPath(folder));
            }
        }
    }

    /// <summary>
    /// The run folder of a <c>node</c>: the coordinator writes it, on whichever node it runs, and a coordinator that moves
    /// appends to it — so <c>--run-dir</c> may already hold this job's run (same configuration), never another's.
    /// Without --run-dir: a default name in this node's working folder, created only if the coordinator runs here.
    /// </summary>
    public static (TrainingOptions Options, string RunDir) ForNode(TrainingOptions options, string? runDir)
    {
        if (runDir is null)
        {
            var root = DefaultName(options);
            var folder = root;
            for (var n = 2; Directory.Exists(folder) || File.Exists(folder); n++)
            {
                folder = $"{root}-{n}";
            }
            return (WithCheckpointsIn(options, folder), Path.GetFullPath(folder));
        }
        if (File.Exists(runDir))
        {
            throw new DistbpInputException($"--run-dir: '{runDir}' is a file; give a folder.");
        }
        var files = new RunFiles(runDir);
        if (files.HoldsRun && files.ConfigHash() is { } hash && hash != options.ConfigHash())
        {
            throw new DistbpInputException(
                $"--run-dir: '{runDir}' holds a run of other training options (config hash {hash}, this node's {options.ConfigHash()}); give another folder.");
        }
        return (WithCheckpointsIn(options, runDir), Path.GetFullPath(runDir));
    }

    /// <summary>
    /// The options saved in the newest valid checkpoint of a run folder (or of a checkpoint folder, as printed by older
    /// runs); the run continues there, appending to the run folder's files.
    /// </summary>
    public static Resumed ResumeFrom(string dir, ParsedArguments args)
    {
        var allowed = new HashSet<string> { "resume", "workers", "threads", "aggregation", "out", "summary-json", "help" };
        if (TrainingOptionsBinder.Valued.Concat(TrainingOptionsBinder.Switches).FirstOrDefault(o => args.Has(o) && !allowed.Contains(o))
            is { } conflicting)
        {
            throw new DistbpInputException(
                $"--{conflicting}: a resumed run keeps the options it was started with; drop --{conflicting} (only --workers, --threads, --aggregation, --out and --summary-json may change).");
        }
        if (!Directory.Exists(dir))
        {
            throw new DistbpInputException($"--resume: '{dir}' is not a folder; give the run folder a run printed.");
        }
        var (runDir, checkpoints) = RunAndCheckpoints(dir);
        foreach (var path in new CheckpointStore(checkpoints).List())
        {
            try
            {
                var header = ModelFile.Read(path, "--resume").Header;
                if (header.Options is { } saved && saved.ConfigHash() == header.ConfigHash && IsValid(saved))
                {
                    return new Resumed(saved with
                    {
                        CheckpointDir = checkpoints,
                        Workers = args.Int("workers", saved.Workers),
                        Threads = args.Int("threads", saved.Threads),
                        Aggregation = args.String("aggregation") ?? saved.Aggregation,
                    }, runDir);
                }
            }
            catch (DistbpInputException)
            {
                // A corrupt newest checkpoint is skipped; the coordinator warns about it when it loads.
            }
        }
        throw new DistbpInputException($"--resume: '{dir}' holds no valid checkpoint (checkpoint-*.distbp in {checkpoints}); nothing to resume.");
    }

    /// <summary>Options a checkpoint carries are believed only if they would pass the command line's own checks.</summary>
    private static bool IsValid(TrainingOptions options)
    {
        try
        {
            options.Validate();
            return true;
        }
        catch (DistbpInputException)
        {
            return false;
        }
    }

    /// <summary>What --resume DIR names: a run folder (its checkpoints where config.json says), a run's checkpoint folder, or a bare checkpoint folder.</summary>
    private static (string? RunDir, string Checkpoints) RunAndCheckpoints(string dir)
    {
        var full = Path.GetFullPath(dir);
        var run = new RunFiles(full);
        if (run.HoldsRun)
        {
            var saved = run.ReadConfig()?["checkpoint_dir"]?.GetValue<string>();
            return (run.Directory, saved ?? run.Checkpoints);
        }
        if (Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(full)) is { } parent
            && new RunFiles(parent) is { HoldsRun: true } owner
            && Path.TrimEndingDirectorySeparator(owner.ReadConfig()?["checkpoint_dir"]?.GetValue<string>() ?? owner.Checkpoints)
            == Path.TrimEndingDirectorySeparator(full))
        {
            return (owner.Directory, full);
        }
        return (null, full);
    }

    private static string DefaultName(TrainingOptions options) =>
        Path.Combine("runs", $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{options.ConfigHash()}");

    private static TrainingOptions WithCheckpointsIn(TrainingOptions options, string runDir) =>
        options.CheckpointDir is null ? options with { CheckpointDir = new RunFiles(runDir).Checkpoints } : options;

    private static DistbpInputException AlreadyHoldsARun(string runDir) => new(
        $"--run-dir: '{runDir}' already holds a run (config.json); give another folder, or continue that run with --resume {runDir}.");
}
