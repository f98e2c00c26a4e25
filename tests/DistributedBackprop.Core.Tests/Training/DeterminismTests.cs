using DistributedBackprop.Core.Tests.Support;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Core.Tests.Training;

/// <summary>The promise of docs/ARCHITECTURE.md in one process: the final weights' SHA-256 does not depend on the thread count.</summary>
public sealed class DeterminismTests
{
    private static readonly TrainingOptions Base = new()
    {
        Layers = "784-32-10",
        Batch = 64,
        Slices = 8,
        Epochs = 1,
        LearningRate = 0.05f,
        Seed = 3,
    };

    [Fact]
    public void Weights_hash_is_the_same_for_1_2_3_and_8_threads()
    {
        AssertSameHashForAnyThreadCount(Base);
    }

    [Fact]
    public void Weights_hash_is_the_same_for_any_thread_count_with_dropout_and_batch_norm()
    {
        AssertSameHashForAnyThreadCount(Base with { Dropout = 0.2f, BatchNorm = true, Optimizer = "adam", LearningRate = 0.001f });
    }

    [Fact]
    public void Weights_hash_is_the_same_with_five_slices_that_split_unevenly_over_threads()
    {
        AssertSameHashForAnyThreadCount(Base with { Batch = 60, Slices = 5, Layers = "784-16-16-10", Activation = "tanh" });
    }

    [Fact]
    public void Different_seed_gives_different_weights()
    {
        Assert.NotEqual(Train(Base with { Threads = 2 }), Train(Base with { Threads = 2, Seed = 4 }));
    }

    private static void AssertSameHashForAnyThreadCount(TrainingOptions options)
    {
        var hashes = new[] { 1, 2, 3, 8 }.Select(t => Train(options with { Threads = t })).ToArray();

        Assert.All(hashes, h => Assert.Equal(hashes[0], h));
    }

    private static string Train(TrainingOptions options)
    {
        var setup = TrainingSetup.Create(options, SampleData.Cut(2560, 256));
        var result = new LocalTrainer(setup).Run();
        Assert.Equal(setup.TotalSteps, result.Steps);
        Assert.True(double.IsFinite(result.FinalTrainLoss));
        return result.WeightsSha256;
    }
}
