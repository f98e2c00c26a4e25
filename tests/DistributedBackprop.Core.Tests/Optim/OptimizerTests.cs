using DistributedBackprop.Core.Optim;
using Xunit;

namespace DistributedBackprop.Core.Tests.Optim;

/// <summary>Three steps of each optimizer on small vectors against the update rule worked out by hand in double.</summary>
public sealed class OptimizerTests
{
    private static readonly float[] Start = [1f, -2f, 0.5f];
    private static readonly float[][] Gradients = [[0.5f, -1f, 0f], [0.25f, 2f, -0.5f], [-1f, 0.1f, 4f]];

    [Fact]
    public void Sgd_subtracts_learning_rate_times_gradient()
    {
        var w = (float[])Start.Clone();
        var optimizer = new Sgd();
        double[] expected = [.. Start.Select(v => (double)v)];

        for (var t = 0; t < 3; t++)
        {
            optimizer.Step(w, Gradients[t], [], 0.1f, t + 1);
            for (var i = 0; i < 3; i++)
            {
                expected[i] -= 0.1 * Gradients[t][i];
            }
            AssertClose(expected, w);
        }
        Assert.Equal(0, optimizer.StatePerParameter);
    }

    [Fact]
    public void Momentum_follows_pytorch_v_equals_mu_v_plus_g_then_w_minus_lr_v()
    {
        var w = (float[])Start.Clone();
        var state = new float[3];
        var optimizer = new Momentum(0.9f);

        // By hand, lr 0.1, μ 0.9, element 0: g = 0.5, 0.25, -1.
        // v1 = 0.5            w1 = 1 - 0.05 = 0.95
        // v2 = 0.45 + 0.25 = 0.7   w2 = 0.95 - 0.07 = 0.88
        // v3 = 0.63 - 1 = -0.37    w3 = 0.88 + 0.037 = 0.917
        double[] w0 = [0.95, 0.88, 0.917];
        double[] v0 = [0.5, 0.7, -0.37];
        var v = new double[3];
        double[] expected = [.. Start.Select(x => (double)x)];
        for (var t = 0; t < 3; t++)
        {
            optimizer.Step(w, Gradients[t], state, 0.1f, t + 1);
            for (var i = 0; i < 3; i++)
            {
                v[i] = 0.9 * v[i] + Gradients[t][i];
                expected[i] -= 0.1 * v[i];
            }
            AssertClose(expected, w);
            AssertClose(v, state);
            Assert.Equal(w0[t], w[0], 1e-6);
            Assert.Equal(v0[t], state[0], 1e-6);
        }
    }

    [Fact]
    public void Adam_follows_pytorch_with_bias_correction()
    {
        const double lr = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
        var w = (float[])Start.Clone();
        var state = new float[6];
        var optimizer = new Adam();
        double[] expected = [.. Start.Select(x => (double)x)];
        var m = new double[3];
        var v = new double[3];

        for (var t = 1; t <= 3; t++)
        {
            optimizer.Step(w, Gradients[t - 1], state, (float)lr, t);
            for (var i = 0; i < 3; i++)
            {
                var g = (double)Gradients[t - 1][i];
                m[i] = beta1 * m[i] + (1 - beta1) * g;
                v[i] = beta2 * v[i] + (1 - beta2) * g * g;
                var mHat = m[i] / (1 - Math.Pow(beta1, t));
                var vHat = v[i] / (1 - Math.Pow(beta2, t));
                // PyTorch: denom = sqrt(v) / sqrt(1 - β2^t) + ε, which equals sqrt(v̂) + ε.
                expected[i] -= lr * mHat / (Math.Sqrt(vHat) + eps);
            }
            AssertClose(expected, w);
            AssertClose(m, state.AsSpan(0, 3));
            AssertClose(v, state.AsSpan(3, 3));
        }
    }

    [Fact]
    public void Adam_first_step_moves_each_parameter_by_the_learning_rate_against_the_gradient_sign()
    {
        float[] w = [0f, 0f, 0f];
        new Adam().Step(w, [3f, -0.001f, 0f], new float[6], 0.01f, 1);

        Assert.Equal(-0.01f, w[0], 1e-6f);
        Assert.Equal(0.01f, w[1], 1e-4f);
        Assert.Equal(0f, w[2]);
    }

    [Fact]
    public void Unknown_optimizer_is_refused_with_an_input_error()
    {
        var e = Assert.Throws<DistbpInputException>(() => Optimizer.Create("rmsprop", 0.9f));
        Assert.Contains("rmsprop", e.Message);
        Assert.IsType<Momentum>(Optimizer.Create("momentum", 0.5f));
        Assert.Equal(0.5f, ((Momentum)Optimizer.Create("momentum", 0.5f)).Mu);
    }

    [Theory]
    [InlineData("sgd")]
    [InlineData("momentum")]
    [InlineData("adam")]
    public void A_gradient_scale_gives_the_bits_of_clipping_in_place_first_and_the_copy_is_the_new_weights(string name)
    {
        // 100 elements: the vector loop and the scalar tail both run.
        var random = new Random(11);
        var start = Enumerable.Range(0, 100).Select(_ => random.NextSingle() - 0.5f).ToArray();
        var gradients = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 100).Select(_ => random.NextSingle() * 8f - 4f)
            .ToArray()).ToArray();
        var clippedFirst = Optimizer.Create(name, 0.9f);
        var scaled = Optimizer.Create(name, 0.9f);
        var (w1, s1) = (start.ToArray(), new float[clippedFirst.StatePerParameter * 100]);
        var (w2, s2) = (start.ToArray(), new float[scaled.StatePerParameter * 100]);
        var copy = new float[100];

        for (var t = 0; t < 3; t++)
        {
            var norm = GradientClipping.GlobalNorm(gradients[t]);
            var inPlace = gradients[t].ToArray();
            var scale = GradientClipping.Clip(inPlace, norm, 5f);
            clippedFirst.Step(w1, inPlace, s1, 0.1f, t + 1);
            scaled.Step(w2, gradients[t], GradientClipping.Scale(norm, 5f), s2, 0.1f, t + 1, copy);
            Assert.True(scale < 1f);
            Assert.Equal(w2, copy);
        }

        Assert.Equal(w1.Select(BitConverter.SingleToInt32Bits), w2.Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(s1.Select(BitConverter.SingleToInt32Bits), s2.Select(BitConverter.SingleToInt32Bits));
    }

    private static void AssertClose(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual)
    {
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-6 * Math.Max(1, Math.Abs(expected[i])),
                $"[{i}]: expected {expected[i]:G9}, got {actual[i]:G9}");
        }
    }
}
