using DistributedBackprop.Core;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Cli;
using DistributedBackprop.Node.Simulation;

namespace DistributedBackprop.Node.Commands;

/// <summary>
/// <c>distbp simulate --nodes N</c>: N real <c>distbp node</c> processes on loopback, one seed, one progress display,
/// the coordinator's summary copied to the user's paths, every child stopped on success, failure and interruption.
/// </summary>
public static class SimulateCommand
{
    public static readonly HashSet<string> SimulateValued = ["nodes", "log-dir"];

    public const string Help = """
        usage: distbp simulate --nodes N [--log-dir DIR] [training options]

          --nodes N        node processes to start on loopback (at least 1); the coordinator runs on one of them
          --log-dir DIR    where each node's output goes (node-K.log); default: a fresh temp folder
          --workers N      workers in the cluster (default: N, one per node)
          --threads N      compute threads per worker (default: cores / N)

        """ + TrainingOptionsBinder.Help;

    public static int Run(IReadOnlyList<string> argv, CancellationToken cancel)
    {
        var valued = TrainingOptionsBinder.Valued.Concat(SimulateValued).ToHashSet();
        var args = ParsedArguments.Parse("simulate", argv, valued, TrainingOptionsBinder.Switches);
        if (args.Flag("help"))
        {
            Console.WriteLine(Help);
            return 0;
        }
        if (!args.Has("nodes"))
        {
            throw new DistbpInputException("--nodes: missing; give the number of node processes, e.g. --nodes 3.");
        }
        var nodes = args.Int("nodes", 0);
        if (nodes < 1)
        {
            throw new DistbpInputException($"--nodes: {nodes} must be at least 1.");
        }
        var options = TrainingOptionsBinder.Bind(args) with
        {
            Workers = args.Int("workers", nodes),
            Threads = args.Int("threads", Math.Max(1, Environment.ProcessorCount / nodes)),
        };
        options.Validate();
        var outPath = args.String("out");
        var summaryPath = args.String("summary-json");
        AtomicFile.CheckWritable(outPath, "out");
        AtomicFile.CheckWritable(summaryPath, "summary-json");
        if (options.CheckpointDir is { } checkpointDir && File.Exists(checkpointDir))
        {
            throw new DistbpInputException($"--checkpoint-dir: '{checkpointDir}' is a file; give a folder.");
        }
        var logDir = args.String("log-dir");
        if (logDir is not null && File.Exists(logDir))
        {
            throw new DistbpInputException($"--log-dir: '{logDir}' is a file; give a folder.");
        }
        // Everything a user can get wrong fails here, before any node starts (the nodes would each say it again).
        var raw = DataSource.Load(options.DataPath);
        TrainingSetup.CheckAgainstData(TrainingSetup.SpecOf(options), raw.Train, options.Layers);
        _ = new SlicePlan(options.Seed, raw.Train.Count, options.Batch, options.Slices);

        logDir = Path.GetFullPath(logDir ?? Path.Combine(Path.GetTempPath(), "distbp-simulate-" + Guid.NewGuid().ToString("N")[..12]));
        Directory.CreateDirectory(logDir);
        Console.WriteLine($"simulating {nodes} nodes on loopback: {options.Layers} on {raw.Train.Count:N0} samples, "
                          + $"batch {options.Batch} in {options.Slices} slices, {options.Epochs} epochs, "
                          + $"{options.Workers} workers; node logs in {logDir}");

        var launch = new ClusterLaunch(nodes, NodeArguments(args, options), logDir);
        return new ClusterLauncher(launch, Console.Out, Console.Error).Run(outPath, summaryPath, cancel);
    }

    /// <summary>The training options every node gets, as given (so every node computes the same configuration hash).</summary>
    private static List<string> NodeArguments(ParsedArguments args, TrainingOptions options)
    {
        var result = new List<string>();
        foreach (var name in TrainingOptionsBinder.Valued.Order(StringComparer.Ordinal))
        {
            if (name is "out" or "summary-json" or "workers" or "threads")
            {
                continue;
            }
            if (args.String(name) is { } value)
            {
                result.Add($"--{name}={value}");
            }
        }
        if (args.Flag("batch-norm"))
        {
            result.Add("--batch-norm");
        }
        result.Add($"--workers={options.Workers}");
        result.Add($"--threads={options.Threads}");
        return result;
    }
}
