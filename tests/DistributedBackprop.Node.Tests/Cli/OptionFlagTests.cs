using DistributedBackprop.Core;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Cli;
using Xunit;

namespace DistributedBackprop.Node.Tests.Cli;

/// <summary>The library names options by their property; the command line words its errors with the flags.</summary>
public sealed class OptionFlagTests
{
    [Fact]
    public void Every_training_option_names_a_flag_that_train_accepts()
    {
        var flags = TrainingOptionsBinder.Valued.Concat(TrainingOptionsBinder.Switches).Select(f => "--" + f).ToHashSet();
        foreach (var property in typeof(TrainingOptions).GetProperties())
        {
            Assert.Contains(TrainingOptionsBinder.FlagOf(property.Name), flags);
        }
    }

    [Theory]
    [InlineData(nameof(TrainingOptions.LearningRate), "--lr")]
    [InlineData(nameof(TrainingOptions.DecayEvery), "--decay-every")]
    [InlineData(nameof(TrainingOptions.CheckpointEvery), "--checkpoint-every")]
    [InlineData(nameof(TrainingOptions.Layers), "--layers")]
    public void An_option_is_spelled_as_its_flag(string option, string flag)
    {
        Assert.Equal(flag, TrainingOptionsBinder.FlagOf(option));
    }

    [Fact]
    public void An_options_error_is_worded_with_its_flag_and_other_input_errors_as_they_are()
    {
        var option = Assert.Throws<DistbpInputException>(() => new TrainingOptions { LearningRate = -1 }.Validate());
        Assert.Equal(nameof(TrainingOptions.LearningRate), option.Option);
        Assert.Equal("LearningRate: -1 must be a positive number, e.g. 0.1.", option.Message);
        Assert.Equal("--lr: -1 must be a positive number, e.g. 0.1.", TrainingOptionsBinder.Describe(option));

        var file = new DistbpInputException("data: 'x.csv' is empty");
        Assert.Equal("data: 'x.csv' is empty", TrainingOptionsBinder.Describe(file));
    }
}
