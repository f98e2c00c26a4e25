using DistributedBackprop.Core;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Cli;
using DistributedBackprop.Node.Dashboard;
using DistributedBackprop.Node.Simulation;

namespace DistributedBackprop.Node.Commands;

/// <summary>
/// <c>distbp simulate --nodes N</c>: N real <c>distbp node</c> processes on loopback, one seed, one progress display,
/// the coordinator's summary copied to the user's paths, every child stopped on success, failure and interruption.
/// </summary>
public static class SimulateCommand
{
    public static readonly HashSet<string> SimulateValued = ["nodes", "log-dir", "chaos", "respawn-delay", "data-channel", "log-level"];
    public static readonly HashSet<string> SimulateSwitches = ["no-respawn"];

    public const string Help = """
        usage: distbp simulate --nodes N [--log-dir DIR] [--chaos SPEC] [--respawn-delay 2s] [--no-respawn] [training options]

          --nodes N        node processes to start on loopback (at least 1); the coordinator runs on one of them
          --log-dir DIR    where each node's output goes (node-K.log); default: a fresh temp folder
          --chaos SPEC     faults to inject: comma-separated ACTION:TARGET@STEP[/DURATION], ACTION kill | stop |
                           partition | slow | nan | leave, TARGET node-K | coordinator, and join:@STEP (a new
                           node); e.g. kill:node-2@30,stop:node-1@60/5s,join:@80
          --respawn-delay D  a killed or exited node is started again after D (default 2s), as Kubernetes would
          --no-respawn     do not start killed nodes again
          --data-channel on|off  on: tensors travel on a TCP data channel per node, not Akka remoting (default on)
          --log-level L    the nodes' Akka log level in their logs (default WARNING; DEBUG shows sharding and singletons)
          --workers N      workers in the cluster (default: N, one per node); a node that joins adds ⌈workers / N⌉
          --threads N      compute threads per worker (default: cores / N)

        """ + DashboardOption.Help + TrainingOptionsBinder.Help;

    public static int Run(IReadOnlyList<string> argv, CancellationToken cancel)
    {
        var valued = TrainingOptionsBinder.Valued.Concat(SimulateValued).Concat(DashboardOption.Valued).ToHashSet();
        var args = ParsedArguments.Parse("simulate", argv, valued,
            TrainingOptionsBinder.Switches.Concat(SimulateSwitches).ToHashSet(), DashboardOption.OptionalValue);
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
        var resumed = args.String("resume") is { } resume ? RunFolder.ResumeFrom(resume, args) : null;
        var options = resumed?.Options
                      ?? RunFolder.WithDefaultCheckpointEvery(TrainingOptionsBinder.Bind(args), args);
        options = options with
        {
            Workers = args.Int("workers", nodes),
            Threads = args.Int("threads", Math.Max(1, Environment.ProcessorCount / nodes)),
        };
        options.Validate();
        var chaos = Chaos.ChaosSpec.Parse(args.String("chaos"), nodes);
        var respawnDelay = args.String("respawn-delay") is { } delayText
            ? Chaos.ChaosSpec.ParseDuration(delayText)
              ?? throw new DistbpInputException($"--respawn-delay: '{delayText}' is not a duration like 2s or 500ms.")
            : TimeSpan.FromSeconds(2);
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
        RunFolder.CheckFree(args.String("run-dir"));
        var dataChannel = args.String("data-channel");
        if (dataChannel is not (null or "on" or "off"))
        {
            throw new DistbpInputException($"--data-channel: '{dataChannel}' is not on or off.");
        }
        // Everything a user can get wrong fails here, before any node starts (the nodes would each say it again).
        using var dashboard = DashboardOption.StartIfAsked(args, Console.Out, cancel);
        var raw = TrainingSetup.LoadChecked(options);
        // The nodes get this run folder, so the coordinator writes it on whichever node it runs.
        var runDir = resumed?.RunDir;
        if (runDir is null)
        {
            (options, runDir) = RunFolder.Create(options, args.String("run-dir"), "simulate", nodes);
        }

        logDir = Path.GetFullPath(logDir ?? Path.Combine(Path.GetTempPath(), "distbp-simulate-" + Guid.NewGuid().ToString("N")[..12]));
        Directory.CreateDirectory(logDir);
        Console.WriteLine($"simulating {nodes} nodes on loopback: {options.Layers} on {raw.Train.Count:N0} samples, "
                          + $"batch {options.Batch} in {options.Slices} slices, {options.Epochs} epochs, "
                          + $"{options.Workers} workers; node logs in {logDir}; run folder {runDir}");

        // The nodes get it as they get the training options (each node's data port stays 0: a free one).
        string[] nodeArguments = [.. TrainingOptionsBinder.ToArguments(options), "--run-dir", runDir,
            .. dataChannel is null ? [] : (string[])["--data-channel", dataChannel],
            .. args.String("log-level") is { } level ? (string[])["--log-level", level] : []];
        var launch = new ClusterLaunch(nodes, nodeArguments, logDir, runDir)
        {
            Chaos = chaos,
            RespawnDelay = respawnDelay,
            Respawn = !args.Flag("no-respawn"),
        };
        // The dashboard tails the run folder the nodes write; this process trains nothing itself.
        dashboard?.Follow(runDir);
        return new ClusterLauncher(launch, Console.Out, Console.Error).Run(outPath, summaryPath, cancel);
    }
}
