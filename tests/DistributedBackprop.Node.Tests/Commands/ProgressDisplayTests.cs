using DistributedBackprop.Core.Health;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Commands;
using Xunit;

namespace DistributedBackprop.Node.Tests.Commands;

public sealed class ProgressDisplayTests
{
    private static readonly StepReport Step = new(0, 0.5, 0.75, 1.0, false, false, 0.1f, null);

    private static void RunEpoch(ProgressDisplay display, int steps)
    {
        for (var s = 0; s < steps; s++)
        {
            display.OnStep(Step with { Step = s }, 0, s, steps, 1000);
        }
        display.OnEpoch(0, 0.5, new Evaluation(0.6, 0.8, 100));
    }

    [Fact]
    public void Redirected_output_is_one_plain_line_per_epoch()
    {
        var output = new StringWriter();
        RunEpoch(new ProgressDisplay(1, output, new StringWriter(), interactive: false), steps: 5);
        Assert.DoesNotContain('\r', output.ToString());
        var line = Assert.Single(output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("epoch 1/1  train loss 0.5000  test loss 0.6000", line);
    }

    [Fact]
    public void A_terminal_gets_a_bar_redrawn_in_place_then_the_epoch_line()
    {
        var output = new StringWriter();
        RunEpoch(new ProgressDisplay(1, output, new StringWriter(), interactive: true), steps: 5);
        var text = output.ToString();
        Assert.StartsWith("\repoch 1/1 [", text);
        Assert.Contains("step 5/5", text);
        Assert.Contains("[########################]", text);
        Assert.EndsWith("test accuracy 80.00 %" + Environment.NewLine, text);
    }

    [Fact]
    public void Warnings_go_to_standard_error_one_line_each()
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        var display = new ProgressDisplay(1, output, errors, interactive: true);
        display.OnStep(Step, 0, 0, 5, 1000);
        display.OnWarning(new HealthWarning(HealthWarning.DeadRelu, "dead ReLU units in epoch 1.",
            "a lower learning rate, or the leaky-relu activation.", ["LearningRate", "Activation"]));
        Assert.Equal("warning: dead ReLU units in epoch 1. Fix: a lower learning rate, or the leaky-relu activation. (--lr, --activation)"
                     + Environment.NewLine, errors.ToString());
        Assert.EndsWith(Environment.NewLine, output.ToString());
    }
}
