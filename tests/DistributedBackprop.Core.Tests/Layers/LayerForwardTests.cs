using DistributedBackprop.Core.Layers;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Tests.Support;
using Xunit;

namespace DistributedBackprop.Core.Tests.Layers;

public sealed class LayerForwardTests
{
    [Fact]
    public void Relu_forward_is_max_of_zero_and_x_and_counts_the_rows_each_unit_fired()
    {
        float[] x = [-2f, 0f, 0.5f, /* row 2 */ 3f, -1f, 0.25f];

        var run = LayerRun.Forward(new Relu(3), 2, x);

        Assert.Equal([0f, 0f, 0.5f, 3f, 0f, 0.25f], run.Output);
        Assert.Equal([1f, 0f, 2f], run.Statistics);
    }

    [Fact]
    public void LeakyRelu_forward_scales_negative_inputs_by_the_slope()
    {
        var run = LayerRun.Forward(new LeakyRelu(4), 1, [-2f, 0f, 0.5f, -100f]);

        Assert.Equal([-0.02f, 0f, 0.5f, -1f], run.Output);
    }

    [Fact]
    public void Sigmoid_forward_matches_the_logistic_function_and_saturates_cleanly()
    {
        var x = Enumerable.Range(-400, 801).Select(i => i / 20f).ToArray();
        var run = LayerRun.Forward(new Sigmoid(x.Length), 1, x);

        for (var i = 0; i < x.Length; i++)
        {
            Assert.Equal(1 / (1 + Math.Exp(-x[i])), run.Output[i], 1e-6);
        }
        Assert.Equal(0.5f, LayerRun.Forward(new Sigmoid(1), 1, [0f]).Output[0]);
        Assert.Equal([0f, 1f], LayerRun.Forward(new Sigmoid(2), 1, [-200f, 200f]).Output);
    }

    [Fact]
    public void Tanh_forward_matches_math_tanh_and_saturates_at_plus_minus_one()
    {
        var x = Enumerable.Range(-400, 801).Select(i => i / 40f).ToArray();
        var run = LayerRun.Forward(new Tanh(x.Length), 1, x);

        for (var i = 0; i < x.Length; i++)
        {
            Assert.Equal(Math.Tanh(x[i]), run.Output[i], 1e-6);
        }
        Assert.Equal([-1f, 0f, 1f], LayerRun.Forward(new Tanh(3), 1, [-50f, 0f, 50f]).Output);
    }

    [Fact]
    public void Dropout_with_rate_zero_is_the_identity_in_training()
    {
        var x = GradientCheck.Random(new Random(1), 3 * 5);
        var run = LayerRun.Forward(new Dropout(5, 0f), 3, x, training: true, seed: 3, step: 4);

        Assert.Equal(x, run.Output);
        Assert.Equal(x, run.Backward(x).InputGradient);
    }

    [Fact]
    public void Dropout_in_inference_is_the_identity()
    {
        var x = GradientCheck.Random(new Random(2), 3 * 5);

        Assert.Equal(x, LayerRun.Forward(new Dropout(5, 0.5f), 3, x, training: false, seed: 3, step: 4).Output);
    }

    [Fact]
    public void Dropout_mask_depends_only_on_seed_step_sample_and_layer()
    {
        const int width = 64;
        var ones = Enumerable.Repeat(1f, 3 * width).ToArray();
        var layer = new Dropout(width, 0.5f);
        var mask = LayerRun.Forward(layer, 3, ones, seed: 7, step: 10, samples: [5, 9, 2], layerIndex: 1).Output;

        // Sample 9 alone, in another row position and another batch: the same row of the mask.
        var alone = LayerRun.Forward(layer, 1, ones[..width], seed: 7, step: 10, samples: [9], layerIndex: 1).Output;
        Assert.Equal(mask.AsSpan(width, width).ToArray(), alone);
        var again = LayerRun.Forward(layer, 3, ones, seed: 7, step: 10, samples: [5, 9, 2], layerIndex: 1).Output;
        Assert.Equal(mask, again);

        Assert.NotEqual(mask, LayerRun.Forward(layer, 3, ones, seed: 7, step: 11, samples: [5, 9, 2], layerIndex: 1).Output);
        Assert.NotEqual(mask, LayerRun.Forward(layer, 3, ones, seed: 8, step: 10, samples: [5, 9, 2], layerIndex: 1).Output);
        Assert.NotEqual(mask, LayerRun.Forward(layer, 3, ones, seed: 7, step: 10, samples: [5, 9, 2], layerIndex: 3).Output);
        Assert.NotEqual(mask.AsSpan(0, width).ToArray(), mask.AsSpan(width, width).ToArray());
    }

    [Theory]
    [InlineData(0.1f)]
    [InlineData(0.5f)]
    [InlineData(0.8f)]
    public void Dropout_keeps_about_one_minus_rate_and_scales_survivors_by_the_inverse_keep_probability(float rate)
    {
        const int rows = 200, width = 100;
        var x = GradientCheck.AwayFromZero(new Random(3), rows * width);

        var output = LayerRun.Forward(new Dropout(width, rate), rows, x, seed: 1, step: 2).Output;

        var kept = 0;
        for (var k = 0; k < x.Length; k++)
        {
            if (output[k] != 0f)
            {
                kept++;
                Assert.Equal(x[k] * (1f / (1f - rate)), output[k]);
            }
        }
        Assert.InRange(kept / (double)x.Length, 1 - rate - 0.02, 1 - rate + 0.02);
    }

    [Theory]
    [InlineData(-0.1f)]
    [InlineData(1f)]
    [InlineData(1.5f)]
    [InlineData(float.NaN)]
    public void Dropout_rate_outside_zero_to_one_is_refused(float rate)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Dropout(4, rate));
        var spec = new NetworkSpec([4, 3, 2], "relu", "mse", rate, BatchNorm: false);
        var e = Assert.Throws<DistbpInputException>(() => spec.BuildLayers());
        Assert.Equal("Dropout", e.Option);
    }

    [Fact]
    public void BatchNorm_training_forward_normalises_each_column_and_reports_mean_and_unbiased_variance()
    {
        float[] x = [1f, 10f, /* */ 2f, 20f, /* */ 3f, 30f, /* */ 6f, 40f];
        var run = LayerRun.Forward(new BatchNorm(2), 4, x, [1f, 1f, 0f, 0f]);

        Assert.Equal([3f, 25f], run.Statistics[..2]);
        Assert.Equal(14f / 3f, run.Statistics[2], 1e-5f);
        Assert.Equal(500f / 3f, run.Statistics[3], 1e-3f);
        for (var j = 0; j < 2; j++)
        {
            var column = Enumerable.Range(0, 4).Select(i => (double)run.Output[i * 2 + j]).ToArray();
            Assert.Equal(0, column.Average(), 1e-6);
            Assert.Equal(1, column.Select(v => v * v).Average(), 1e-3);
        }
    }

    [Fact]
    public void BatchNorm_inference_uses_the_running_statistics()
    {
        var gamma = new[] { 2f, 0.5f };
        var beta = new[] { 1f, -1f };
        float[] runningMean = [3f, -2f];
        float[] runningVariance = [4f, 0.25f];
        float[] x = [5f, -2f, /* */ 1f, 0f];

        var run = LayerRun.Forward(new BatchNorm(2), 2, x, [.. gamma, .. beta], [.. runningMean, .. runningVariance],
            training: false);

        for (var i = 0; i < 2; i++)
        {
            for (var j = 0; j < 2; j++)
            {
                var expected = gamma[j] * (x[i * 2 + j] - runningMean[j]) / Math.Sqrt(runningVariance[j] + 1e-5) + beta[j];
                Assert.Equal(expected, run.Output[i * 2 + j], 1e-5);
            }
        }
    }

    [Fact]
    public void BatchNorm_update_buffers_applies_momentum_one_tenth()
    {
        float[] buffers = [0f, 2f, /* variance */ 1f, 1f];

        new BatchNorm(2).UpdateBuffers(buffers, [10f, -2f, /* variance */ 5f, 1f]);

        Assert.Equal(1f, buffers[0], 1e-6f);
        Assert.Equal(1.6f, buffers[1], 1e-6f);
        Assert.Equal(1.4f, buffers[2], 1e-6f);
        Assert.Equal(1f, buffers[3], 1e-6f);
    }

    [Fact]
    public void BatchNorm_starts_as_identity_with_running_mean_zero_and_variance_one()
    {
        var layer = new BatchNorm(3);
        var parameters = new float[layer.ParameterCount];
        var buffers = new float[layer.BufferCount];
        var random = new Core.Numerics.SplitMix64(1);

        layer.Initialize(parameters, buffers, ref random);

        Assert.Equal([1f, 1f, 1f, 0f, 0f, 0f], parameters);
        Assert.Equal([0f, 0f, 0f, 1f, 1f, 1f], buffers);
    }
}
