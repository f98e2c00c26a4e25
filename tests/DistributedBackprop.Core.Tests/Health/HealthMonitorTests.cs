using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Health;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Optim;
using DistributedBackprop.Core.Tests.Support;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Core.Tests.Health;

public sealed class HealthMonitorTests
{
    private const int Batch = 8;

    [Fact]
    public void Nan_gradient_from_a_nan_feature_is_skipped_never_applied_and_halves_the_learning_rate()
    {
        var data = SampleData.Blobs(16, 4, 3, seed: 1);
        data.Features[3 * 4 + 2] = float.NaN;
        var state = NewState("4-5-3", clip: 5f);
        var before = state.Weights.Copy();

        var report = state.Apply(SliceSum(state, data, [0, 1, 2, 3, 4, 5, 6, 7]), Batch, 1);

        Assert.True(report.Skipped);
        Assert.Contains("NaN", report.Warning?.Text);
        Assert.Equal(before.Parameters, state.Weights.Parameters);
        Assert.Equal(before.Buffers, state.Weights.Buffers);
        Assert.All(state.OptimizerState, v => Assert.Equal(0f, v));
        Assert.Equal(1, state.Health.NonFiniteSteps);
        Assert.Equal(1, state.Health.SkippedSteps);
        Assert.Equal(0.5f, state.Health.LearningRateScale);
        Assert.Equal(0, state.AppliedUpdates);
        Assert.Equal(1, state.Step);

        // The next, clean step is applied at half the scheduled rate.
        var next = state.Apply(SliceSum(state, data, [8, 9, 10, 11, 12, 13, 14, 15]), Batch, 1);
        Assert.False(next.Skipped);
        Assert.Equal(state.Schedule.At(1) * 0.5f, next.LearningRate);
        Assert.NotEqual(before.Parameters, state.Weights.Parameters);
        Assert.Equal(1, state.AppliedUpdates);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void Non_finite_value_in_the_summed_gradient_is_skipped_and_counted(float bad)
    {
        var state = NewState("4-5-3", clip: 0f);
        var before = state.Weights.Copy();
        var sum = new float[state.Network.ResultLength];
        sum.AsSpan(0, state.Network.ParameterCount).Fill(0.01f);
        sum[7] = bad;

        var report = state.Apply(sum, Batch, 1);
        state.Apply(sum.ToArray(), Batch, 1);

        Assert.True(report.Skipped);
        Assert.Equal(before.Parameters, state.Weights.Parameters);
        Assert.Equal(2, state.Health.NonFiniteSteps);
        Assert.Equal(0.25f, state.Health.LearningRateScale);
    }

    [Fact]
    public void Norm_far_above_the_clip_threshold_is_skipped_and_halves_the_learning_rate()
    {
        var state = NewState("4-5-3", clip: 1f);
        var before = state.Weights.Copy();

        // Averaged gradient norm 100 (the sum is over the batch): ten times over the limit of 10 × clip.
        var report = state.Apply(UniformSum(state, norm: 100 * Batch), Batch, 1);

        Assert.True(report.Skipped);
        Assert.Equal(100, report.GradientNorm, 1e-3);
        Assert.Contains("exploding", report.Warning?.Text);
        Assert.Equal(before.Parameters, state.Weights.Parameters);
        Assert.Equal(1, state.Health.ExplodingSteps);
        Assert.Equal(0.5f, state.Health.LearningRateScale);
    }

    [Fact]
    public void Norm_above_the_clip_threshold_but_within_the_limit_is_clipped_and_applied()
    {
        var state = NewState("4-5-3", clip: 1f, optimizer: "sgd");
        var before = state.Weights.Copy();

        var report = state.Apply(UniformSum(state, norm: 4 * Batch), Batch, 1);

        Assert.False(report.Skipped);
        Assert.True(report.Clipped);
        Assert.Equal(1, state.Health.ClippedSteps);
        Assert.Equal(1f, state.Health.LearningRateScale);
        // SGD moved the weights by lr × the clipped gradient, whose norm is the threshold.
        var moved = Math.Sqrt(before.Parameters.Zip(state.Weights.Parameters, (a, b) => (double)(a - b) * (a - b)).Sum());
        Assert.Equal(0.1 * 1.0, moved, 1e-5);
    }

    [Fact]
    public void Without_clipping_a_norm_above_one_thousand_counts_as_exploding()
    {
        var state = NewState("4-5-3", clip: 0f);

        Assert.False(state.Apply(UniformSum(state, norm: 999 * Batch), Batch, 1).Skipped);
        Assert.True(state.Apply(UniformSum(state, norm: 1001 * Batch), Batch, 1).Skipped);
        Assert.Equal(1, state.Health.ExplodingSteps);
    }

    [Fact]
    public void Deep_sigmoid_network_warns_of_vanishing_gradients_and_the_same_depth_with_relu_does_not()
    {
        const string deep = "784-32-32-32-32-32-32-32-32-10";
        var sigmoid = Train(new TrainingOptions { Layers = deep, Activation = "sigmoid", Optimizer = "sgd", LearningRate = 0.1f, Epochs = 1 });
        var relu = Train(new TrainingOptions { Layers = deep, Activation = "relu", Optimizer = "sgd", LearningRate = 0.1f, Epochs = 1 });

        Assert.Equal(1, sigmoid.Result.Health.VanishingWarnings);
        Assert.Contains(sigmoid.Warnings, w => w.StartsWith("vanishing gradients", StringComparison.Ordinal));
        var norms = sigmoid.Result.Health.MeanLayerGradientNorms;
        Assert.True(norms[0] < HealthMonitor.VanishingRatio * norms[^1], $"first {norms[0]:G3}, last {norms[^1]:G3}");

        Assert.Equal(0, relu.Result.Health.VanishingWarnings);
        Assert.DoesNotContain(relu.Warnings, w => w.Contains("vanishing", StringComparison.Ordinal));
    }

    [Fact]
    public void Relu_network_trained_with_a_huge_learning_rate_reports_dead_units_and_a_normal_one_does_not()
    {
        // Momentum 0.9 at lr 0.5 without clipping drives the second hidden layer's units below zero for every input
        // within the first epoch: from then on they never fire and get no gradient (no step is skipped on the way).
        var options = new TrainingOptions { Layers = "784-64-64-10", Optimizer = "momentum", Clip = 0f, Epochs = 3 };
        var huge = Train(options with { LearningRate = 0.5f });
        var normal = Train(options with { LearningRate = 0.02f });

        Assert.Equal(0, huge.Result.Health.SkippedSteps);
        Assert.True(huge.Result.Health.DeadUnitWarnings > 0);
        Assert.True(huge.Result.Health.DeadUnitFractions.Max() >= HealthMonitor.DeadFraction);
        Assert.Contains(huge.Warnings, w => w.StartsWith("dead ReLU units", StringComparison.Ordinal));

        Assert.Equal(0, normal.Result.Health.DeadUnitWarnings);
        Assert.All(normal.Result.Health.DeadUnitFractions, f => Assert.True(f < 0.1, $"{f:P0} dead"));
        Assert.True(normal.Result.Test.Accuracy > 0.6, $"accuracy {normal.Result.Test.Accuracy}");
    }

    [Fact]
    public void Epoch_in_which_every_step_was_skipped_reports_no_dead_units()
    {
        var network = new Network(new NetworkSpec([4, 5, 3], "relu", "cross-entropy", 0f, false));
        var monitor = new HealthMonitor(network, clipNorm: 1f);

        Assert.False(monitor.Admit(0, double.NaN, [0.0, 0.0], out _));
        Assert.False(monitor.Admit(1, 1e9, [0.0, 0.0], out _));
        var warnings = monitor.EndEpoch(0);

        Assert.Empty(warnings);
        Assert.Equal(0, monitor.DeadUnitWarnings);
        Assert.Equal(2, monitor.SkippedSteps);
    }

    [Fact]
    public void A_warning_names_its_failure_and_its_fix_apart_from_the_message()
    {
        var state = NewState("4-5-3", clip: 1f);

        var warning = state.Apply(UniformSum(state, norm: 100 * Batch), Batch, 1).Warning;

        Assert.NotNull(warning);
        Assert.Equal(HealthWarning.Exploding, warning.Type);
        Assert.StartsWith("exploding gradients at step 0", warning.Message);
        Assert.Contains("a lower learning rate", warning.Fix);
        Assert.Equal(["LearningRate", "BatchNorm", "Clip"], warning.Options);
        Assert.Equal($"{warning.Message} Fix: {warning.Fix}", warning.Text);
        Assert.Equal([warning.Text], state.Health.Warnings);
    }

    [Fact]
    public void Layer_gradient_norms_cover_every_layer_with_parameters_and_make_up_the_global_norm()
    {
        var data = SampleData.Blobs(16, 4, 3, seed: 1);
        var state = NewState("4-5-3", clip: 0f, batchNorm: true);

        var report = state.Apply(SliceSum(state, data, [0, 1, 2, 3, 4, 5, 6, 7]), Batch, 1);

        Assert.Equal(["dense0", "batch-norm0", "dense1"], state.LayerNames);
        Assert.Equal(3, state.LayerGradientNorms.Length);
        Assert.All(state.LayerGradientNorms, n => Assert.True(n > 0));
        Assert.Equal(report.GradientNorm, Math.Sqrt(state.LayerGradientNorms.Sum(n => n * n)), 1e-9);
        Assert.True(state.Health.HasReluLayers);
        Assert.InRange(Assert.Single(state.Health.StepDeadFractions), 0.0, 1.0);
    }

    private static TrainingState NewState(string layers, float clip, string optimizer = "momentum", bool batchNorm = false)
    {
        var network = new Network(new NetworkSpec(NetworkSpec.ParseWidths(layers), "relu", "cross-entropy", 0f, batchNorm));
        return new TrainingState(network, network.Initialize(5), Optimizer.Create(optimizer, 0.9f),
            new LearningRateSchedule(0.1f, 0, "none", 0, 0.1f, 100), clip);
    }

    private static float[] SliceSum(TrainingState state, Dataset data, int[] indices)
    {
        var sum = new float[state.Network.ResultLength];
        SliceComputer.Compute(state.Network, state.Weights, data, indices, 1, state.Step,
            new Workspace(state.Network, indices.Length), sum);
        return sum;
    }

    /// <summary>A summed result whose gradient part has the given L2 norm, spread evenly.</summary>
    private static float[] UniformSum(TrainingState state, double norm)
    {
        var p = state.Network.ParameterCount;
        var sum = new float[state.Network.ResultLength];
        sum.AsSpan(0, p).Fill((float)(norm / Math.Sqrt(p)));
        return sum;
    }

    private static (TrainingResult Result, List<string> Warnings) Train(TrainingOptions options)
    {
        var setup = TrainingSetup.Create(options with { Batch = 64, Slices = 8, Threads = 2 }, SampleData.Cut(2560, 256));
        var observer = new WarningCollector();
        return (new LocalTrainer(setup).Run(observer), observer.Warnings);
    }

    private sealed class WarningCollector : ITrainingObserver
    {
        public List<string> Warnings { get; } = [];

        public void OnStep(StepReport report, int epoch, int stepInEpoch, int stepsPerEpoch, double samplesPerSecond)
        {
        }

        public void OnEpoch(int epoch, double trainLoss, Evaluation test)
        {
        }

        public void OnWarning(HealthWarning warning) => Warnings.Add(warning.Text);
    }
}
