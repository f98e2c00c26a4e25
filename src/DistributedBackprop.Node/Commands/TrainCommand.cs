using DistributedBackprop.Core;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Cli;

namespace DistributedBackprop.Node.Commands;

/// <summary><c>distbp train</c>: the main job, in one process.</summary>
public static class TrainCommand
{
    public static int Run(IReadOnlyList<string> argv, CancellationToken cancel)
    {
        var args = ParsedArguments.Parse("train", argv, TrainingOptionsBinder.Valued, TrainingOptionsBinder.Switches);
        if (args.Flag("help"))
        {
            Console.WriteLine("usage: distbp train [training options]\n\n" + TrainingOptionsBinder.Help);
            return 0;
        }
        var options = TrainingOptionsBinder.Bind(args);
        options.Validate();
        if (options.Workers > 1)
        {
            throw new DistbpInputException(
                $"--workers: {options.Workers} workers need the cluster runtime, which this build does not have yet; use --workers 1 (slices still run on every core).");
        }
        var outPath = args.String("out");
        var summaryPath = args.String("summary-json");
        AtomicFile.CheckWritable(outPath, "out");
        AtomicFile.CheckWritable(summaryPath, "summary-json");
        if (options.CheckpointDir is { } checkpointDir && File.Exists(checkpointDir))
        {
            throw new DistbpInputException($"--checkpoint-dir: '{checkpointDir}' is a file; give a folder.");
        }

        var setup = TrainingSetup.Create(options);
        Console.WriteLine($"training {setup.Network.Spec.WidthsText} ({setup.Network.ParameterCount:N0} parameters) on "
                          + $"{setup.Data.Train.Count:N0} samples, testing on {setup.Data.Test.Count:N0}; batch {options.Batch} "
                          + $"in {options.Slices} slices, {options.Epochs} epochs, {options.Threads} threads");
        var trainer = new LocalTrainer(setup);
        var store = options.CheckpointDir is { } dir ? new CheckpointStore(dir) : null;
        var result = trainer.Run(ProgressDisplay.ForConsole(options.Epochs),
            store is null ? null : state => store.Save(setup, state), cancel);

        if (outPath is not null)
        {
            ModelFile.Write(outPath, CheckpointStore.Snapshot(setup, trainer.State, "model"));
        }
        if (summaryPath is not null)
        {
            AtomicFile.WriteAllText(summaryPath,
                TrainingSummary.ToJson(TrainingSummary.Build(setup, result, workers: 1, nodes: 1)));
        }
        Console.WriteLine($"test accuracy {result.Test.Accuracy:P2}  test loss {result.Test.Loss:F4}  "
                          + $"{result.SamplesPerSecond:N0} samples/s over {result.TrainSeconds:F2} s");
        Console.WriteLine($"weights_sha256 {result.WeightsSha256}");
        return 0;
    }
}
