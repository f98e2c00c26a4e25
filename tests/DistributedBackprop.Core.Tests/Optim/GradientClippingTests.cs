using DistributedBackprop.Core.Kernels;
using DistributedBackprop.Core.Optim;
using Xunit;

namespace DistributedBackprop.Core.Tests.Optim;

public sealed class GradientClippingTests
{
    [Fact]
    public void Gradient_with_norm_below_threshold_is_untouched()
    {
        float[] g = [3f, 4f];
        var norm = GradientClipping.GlobalNorm(g);

        Assert.Equal(5.0, norm, 1e-12);
        Assert.Equal(1f, GradientClipping.Clip(g, norm, 5.1f));
        Assert.Equal([3f, 4f], g);
    }

    [Fact]
    public void Gradient_above_threshold_is_scaled_by_c_over_norm_plus_1e6_as_clip_grad_norm()
    {
        var g = Enumerable.Range(0, 37).Select(i => (float)Math.Sin(i) * 3f).ToArray();
        var original = (float[])g.Clone();
        var norm = GradientClipping.GlobalNorm(g);

        var scale = GradientClipping.Clip(g, norm, 2f);

        // torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6), applied when below 1.
        var expectedScale = (float)(2.0 / (norm + 1e-6));
        Assert.Equal(expectedScale, scale);
        for (var i = 0; i < g.Length; i++)
        {
            Assert.Equal(original[i] * expectedScale, g[i]);
        }
        Assert.Equal(2.0, GradientClipping.GlobalNorm(g), 1e-5);
    }

    [Fact]
    public void Clip_zero_turns_clipping_off()
    {
        float[] g = [300f, -400f];

        Assert.Equal(1f, GradientClipping.Clip(g, GradientClipping.GlobalNorm(g), 0f));
        Assert.Equal([300f, -400f], g);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(1000)]
    [InlineData(100_003)]
    public void SumOfSquares_equals_a_double_reference(int length)
    {
        var x = Values(length, seed: length);
        var reference = x.Sum(v => (double)v * v);

        // Float lanes of up to ~6,000 terms each: relative error well under 1e-4, ample for a norm that decides clipping.
        Assert.Equal(reference, Elementwise.SumOfSquares(x), 1e-4 * reference + 1e-30);
    }

    [Theory]
    [InlineData(7)]
    [InlineData(48)]
    [InlineData(100_003)]
    public void SumOfSquares_has_a_fixed_order_independent_of_the_vector_width(int length)
    {
        var x = Values(length, seed: 3);

        // The documented order: element i into lane i mod 16 by fused multiply-add, lanes 0..15 summed in double.
        var lanes = new float[16];
        for (var i = 0; i < x.Length; i++)
        {
            lanes[i % 16] = MathF.FusedMultiplyAdd(x[i], x[i], lanes[i % 16]);
        }
        var expected = 0.0;
        foreach (var lane in lanes)
        {
            expected += lane;
        }

        var first = Elementwise.SumOfSquares(x);
        Assert.Equal(BitConverter.DoubleToInt64Bits(expected), BitConverter.DoubleToInt64Bits(first));
        Assert.Equal(BitConverter.DoubleToInt64Bits(first), BitConverter.DoubleToInt64Bits(Elementwise.SumOfSquares(x)));
    }

    [Theory]
    [InlineData(7, 256f)]
    [InlineData(48, 256f)]
    [InlineData(100_003, 256f)]
    [InlineData(100_003, 512f)]
    [InlineData(100_003, 1f)]
    [InlineData(48, 60f)]
    [InlineData(100_003, 300f)]
    public void DivideAndSumOfSquares_is_bit_identical_to_dividing_then_summing_squares(int length, float divisor)
    {
        // Powers of two take the reciprocal multiply; other divisors divide. Tiny values check the subnormal range too.
        var separate = Values(length, seed: 5).Select((v, i) => i % 97 == 0 ? v * 1e-38f : v).ToArray();
        var fused = separate.ToArray();

        Elementwise.DivideInPlace(separate, divisor);
        var expected = Elementwise.SumOfSquares(separate);
        var total = Elementwise.DivideAndSumOfSquares(fused, divisor);

        Assert.Equal(BitConverter.DoubleToInt64Bits(expected), BitConverter.DoubleToInt64Bits(total));
        Assert.Equal(separate.Select(BitConverter.SingleToInt32Bits), fused.Select(BitConverter.SingleToInt32Bits));
    }

    private static float[] Values(int length, int seed)
    {
        var random = new Random(seed);
        // Mixed magnitudes, so a different summation order would change the bits.
        return Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-3, 4))))
            .ToArray();
    }
}
