using DistributedBackprop.Core.Layers;
using DistributedBackprop.Core.Tests.Support;
using Xunit;
using static DistributedBackprop.Core.Tests.Support.GradientCheck;

namespace DistributedBackprop.Core.Tests.Layers;

/// <summary>
/// Each layer's backward (parameter gradients and input gradient) against central differences of a double-precision
/// reference of the same forward, through the scalar L = Σ_k c_k·y_k with random c, so dL/dy = c.
/// </summary>
public sealed class LayerGradientTests
{
    private const double Tolerance = 1e-3;

    [Fact]
    public void Dense_backward_matches_finite_differences()
    {
        var random = new Random(1);
        const int rows = 4, inputs = 5, outputs = 3;
        var layer = new Dense(inputs, outputs, WeightInit.He);
        Check(layer, rows, Random(random, rows * inputs), Random(random, layer.ParameterCount),
            (x, p) => Reference.Dense(x, p, rows, inputs, outputs));
    }

    [Fact]
    public void Relu_backward_matches_finite_differences_away_from_the_kink()
    {
        var random = new Random(2);
        const int rows = 4, width = 6;
        Check(new Relu(width), rows, AwayFromZero(random, rows * width), [], (x, _) => Reference.Relu(x));
    }

    [Fact]
    public void LeakyRelu_backward_matches_finite_differences_away_from_the_kink()
    {
        var random = new Random(3);
        const int rows = 4, width = 6;
        Check(new LeakyRelu(width), rows, AwayFromZero(random, rows * width), [], (x, _) => Reference.LeakyRelu(x, 0.01));
        Check(new LeakyRelu(width, 0.2f), rows, AwayFromZero(random, rows * width), [],
            (x, _) => Reference.LeakyRelu(x, 0.2f));
    }

    [Fact]
    public void Sigmoid_backward_matches_finite_differences()
    {
        var random = new Random(4);
        const int rows = 4, width = 6;
        Check(new Sigmoid(width), rows, Random(random, rows * width, scale: 4), [], (x, _) => Reference.Sigmoid(x));
    }

    [Fact]
    public void Tanh_backward_matches_finite_differences()
    {
        var random = new Random(5);
        const int rows = 4, width = 6;
        Check(new Tanh(width), rows, Random(random, rows * width, scale: 2.5), [], (x, _) => Reference.Tanh(x));
    }

    [Fact]
    public void Dropout_backward_matches_finite_differences_for_a_fixed_key()
    {
        var random = new Random(6);
        const int width = 8;
        const float rate = 0.3f;
        int[] samples = [11, 3, 42, 7, 0, 19];
        var layer = new Dropout(width, rate);
        var run = Check(layer, samples.Length, Random(random, samples.Length * width), [],
            (x, _) => Reference.Dropout(x, rate, width, seed: 5, step: 9, samples, layer: 2),
            seed: 5, step: 9, samples, layerIndex: 2);
        Assert.Contains(0f, run.Output);
    }

    [Fact]
    public void BatchNorm_backward_in_training_mode_matches_finite_differences()
    {
        var random = new Random(7);
        const int rows = 6, width = 4;
        var x = Random(random, rows * width, scale: 2).Select((v, i) => v + i % width).ToArray();
        var gamma = Random(random, width, scale: 0.5).Select(v => v + 1f);
        var beta = Random(random, width, scale: 0.5);
        Check(new BatchNorm(width), rows, x, [.. gamma, .. beta], (xd, p) => Reference.BatchNorm(xd, p, rows, width));
    }

    private static LayerRun Check(Layer layer, int rows, float[] x, float[] p, Func<double[], double[], double[]> reference,
        ulong seed = 0, long step = 0, int[]? samples = null, int layerIndex = 0)
    {
        var c = Random(new Random(99), rows * layer.OutputSize);
        var run = LayerRun.Forward(layer, rows, x, p, training: true, seed: seed, step: step, samples: samples,
            layerIndex: layerIndex).Backward(c);

        var xd = x.Doubles();
        var pd = p.Doubles();
        var cd = c.Doubles();
        // The reference is the same function: its output agrees with the float forward.
        AssertClose(reference(xd, pd), run.Output, 1e-4, $"{layer.Kind} forward");

        AssertClose(Numerical(v => Dot(cd, reference(v, pd)), xd), run.InputGradient, Tolerance, $"{layer.Kind} dX");
        if (p.Length > 0)
        {
            AssertClose(Numerical(v => Dot(cd, reference(xd, v)), pd), run.Gradients, Tolerance, $"{layer.Kind} dParams");
        }
        return run;
    }
}
