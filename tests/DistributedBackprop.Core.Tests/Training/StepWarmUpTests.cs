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
    public void Warm_up_runs_one_step_of_the_configuration_and_leaves_the_data_as_it_was(TrainingOptions options)
    {
        var data = SampleData.Cut(256, 64);
        var before = data.Train.Features.ToArray();

        var failure = Record.Exception(() => StepWarmUp.Run(options, data.Train, threads: 2));

        Assert.Null(failure);
        Assert.Equal(before, data.Train.Features.ToArray());
    }
}
