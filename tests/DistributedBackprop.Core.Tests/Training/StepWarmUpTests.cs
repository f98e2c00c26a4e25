using DistributedBackprop.Core.Tests.Support;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Core.Tests.Training;

/// <summary>The throwaway step a worker runs as it starts: every kind of configuration runs, and the data is untouched.</summary>
public sealed class StepWarmUpTests
{
    public static TheoryData<TrainingOptions> Configurations() =>
    [
        new TrainingOptions { Layers = "784-32-10", Batch = 64, Slices = 8 },
        new TrainingOptions { Layers = "784-16-16-10", Batch = 60, Slices = 5, Activation = "tanh", Optimizer = "adam" },
        new TrainingOptions { Layers = "784-32-10", Batch = 64, Slices = 4, Dropout = 0.3f, BatchNorm = true, Loss = "mse" },
    ];

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Warm_up_runs_a_step_and_leaves_the_data_and_the_kept_runner_as_a_fresh_one(TrainingOptions options)
    {
        var data = SampleData.Cut(256, 64);
        var before = data.Train.Features.ToArray();
        var pool = BufferPool.ForSlices(new Model.Network(TrainingSetup.SpecOf(options)).ResultLength, options.Slices);
        using var warmed = StepWarmUp.Runner(options, 2, pool);

        StepWarmUp.Run(options, data.Train, warmed);

        Assert.Equal(before, data.Train.Features.ToArray());
        // The kept runner's next step has the bits of a runner that never warmed up.
        using var fresh = StepWarmUp.Runner(options, 2, new BufferPool(pool.Length, pool.Capacity));
        var weights = fresh.Network.Initialize(options.Seed + 1);
        var batch = Enumerable.Range(0, options.Batch).Select(i => (i * 7) % data.Train.Count).ToArray();
        var expected = fresh.Run(weights, data.Train, batch, options.Seed, 5, 0, options.Slices).Single().Value;
        var actual = warmed.Run(weights, data.Train, batch, options.Seed, 5, 0, options.Slices).Single().Value;
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
    }
}
