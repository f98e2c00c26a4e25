using DistributedBackprop.Cluster;
using DistributedBackprop.Cluster.Hosting;
using DistributedBackprop.Core;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Cli;
using DistributedBackprop.Node.Dashboard;

namespace DistributedBackprop.Node.Commands;

/// <summary><c>distbp train</c>: the main job, in one process.</summary>
public static class TrainCommand
{
    /// <summary>One node that founds its own cluster and hosts every worker entity and the coordinator.</summary>
    private static async Task<JobOutcome> RunInProcessCluster(NodeContext context, CancellationToken cancel)
    {
        await using var node = await ClusterNode.StartAsync(new ClusterNodeSettings(), context, cancel);
        using var registration = cancel.Register(() => context.Abandon(cancel));
        return await node.Finished;
    }

    public static int Run(IReadOnlyList<string> argv, CancellationToken cancel)
    {
        var args = ParsedArguments.Parse("train", argv, TrainingOptionsBinder.Valued.Concat(DashboardOption.Valued).ToHashSet(),
            TrainingOptionsBinder.Switches, DashboardOption.OptionalValue);
        if (args.Flag("help"))
        {
            Console.WriteLine("usage: distbp train [training options]\n\n" + DashboardOption.Help + TrainingOptionsBinder.Help);
            return 0;
        }
        var resumed = args.String("resume") is { } resume ? RunFolder.ResumeFrom(resume, args) : null;
        var options = resumed?.Options ?? RunFolder.WithDefaultCheckpointEvery(
            TrainingOptionsBinder.Bind(args) with { Workers = args.Int("workers", Environment.ProcessorCount) }, args);
        options.Validate();
        var outPath = args.String("out");
        var summaryPath = args.String("summary-json");
        AtomicFile.CheckWritable(outPath, "out");
        AtomicFile.CheckWritable(summaryPath, "summary-json");
        if (options.CheckpointDir is { } checkpointDir && File.Exists(checkpointDir))
        {
            throw new DistbpInputException($"--checkpoint-dir: '{checkpointDir}' is a file; give a folder.");
        }
        RunFolder.CheckFree(args.String("run-dir"));

        using var dashboard = DashboardOption.StartIfAsked(args, Console.Out, cancel);
        var raw = TrainingSetup.LoadChecked(options);
        // The run folder is made only once everything a user can get wrong has been checked.
        var runDir = resumed?.RunDir;
        if (runDir is null)
        {
            (options, runDir) = RunFolder.Create(options, args.String("run-dir"), "train", nodes: 1);
        }
        Console.WriteLine($"training {options.Layers} on {raw.Train.Count:N0} samples, testing on {raw.Test.Count:N0}; "
                          + $"batch {options.Batch} in {options.Slices} slices, {options.Epochs} epochs, "
                          + $"{options.Workers} workers in one process; run folder {runDir}");
        var outputs = new JobOutputs(outPath, summaryPath, MinNodes: 1, Nodes: 1) { RunDir = runDir, Command = "train" };
        var context = new NodeContext(new JobSpec(options, raw, outputs, localWorkers: options.Workers), ProgressDisplay.ForConsole(options.Epochs));
        dashboard?.Follow(runDir);
        var outcome = RunInProcessCluster(context, cancel).GetAwaiter().GetResult();
        if (outcome.Result is not { } result)
        {
            // In one process the coordinator is here: a job that ended without a result did not finish.
            return Math.Max(1, JobOutcomes.Ended(outcome, Console.Error));
        }
        Console.WriteLine($"test accuracy {result.Test.Accuracy:P2}  test loss {result.Test.Loss:F4}  "
                          + $"{result.SamplesPerSecond:N0} samples/s over {result.TrainSeconds:F2} s");
        Console.WriteLine($"weights_sha256 {result.WeightsSha256}");
        return 0;
    }
}
