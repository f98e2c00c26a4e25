using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Tests.Support;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Core.Tests.Checkpoints;

/// <summary>A tiny real run (4 features, 3 classes, batch norm, Adam) whose state the file tests write and read.</summary>
internal static class CheckpointFixture
{
    public static readonly TrainingOptions Options = new()
    {
        Layers = "4-6-3",
        BatchNorm = true,
        Optimizer = "adam",
        LearningRate = 0.01f,
        Batch = 16,
        Slices = 4,
        Epochs = 2,
        Threads = 1,
        Seed = 11,
    };

    public static DataSplit Data() => new(SampleData.Blobs(64, 4, 3, seed: 1), SampleData.Blobs(32, 4, 3, seed: 2));

    public static TrainingSetup Setup(TrainingOptions? options = null) => TrainingSetup.Create(options ?? Options, Data());

    /// <summary>A setup and the state after a full run: weights, buffers and optimizer state all non-trivial.</summary>
    public static (TrainingSetup Setup, TrainingState State) Trained()
    {
        var setup = Setup();
        var trainer = new LocalTrainer(setup);
        trainer.Run();
        return (setup, trainer.State);
    }
}
