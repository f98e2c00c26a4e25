using DistributedBackprop.Core.Numerics;
using Xunit;

namespace DistributedBackprop.Core.Tests.Numerics;

public sealed class DeterministicMathTests
{
    [Fact]
    public void Exp_is_within_two_ulp_of_the_correctly_rounded_exp_over_the_normal_range()
    {
        // Every float from the smallest normal result up to the largest finite one, sampled densely.
        var worst = 0L;
        var worstAt = 0f;
        var edge = LargestFiniteExpArgument();
        for (var x = -87.3f; x <= edge; x = NextSample(x, edge))
        {
            var distance = UlpDistance(DeterministicMath.Exp(x), (float)Math.Exp(x));
            if (distance > worst)
            {
                (worst, worstAt) = (distance, x);
            }
        }
        Assert.True(worst <= 2, $"Exp({worstAt:R}) is {worst} ulp from Math.Exp");
    }

    [Fact]
    public void Exp_is_within_two_ulp_for_every_float_in_minus_one_to_one()
    {
        for (var bits = BitConverter.SingleToInt32Bits(1f); bits > 0; bits -= 1009)
        {
            foreach (var x in new[] { BitConverter.Int32BitsToSingle(bits), -BitConverter.Int32BitsToSingle(bits) })
            {
                Assert.True(UlpDistance(DeterministicMath.Exp(x), (float)Math.Exp(x)) <= 2, $"Exp({x:R})");
            }
        }
    }

    [Fact]
    public void Exp_of_zero_is_exactly_one_and_of_extremes_is_infinity_or_zero()
    {
        Assert.Equal(1f, DeterministicMath.Exp(0f));
        Assert.Equal(float.PositiveInfinity, DeterministicMath.Exp(float.PositiveInfinity));
        Assert.Equal(0f, DeterministicMath.Exp(float.NegativeInfinity));
        Assert.Equal(float.PositiveInfinity, DeterministicMath.Exp(89f));
        Assert.Equal(float.PositiveInfinity, DeterministicMath.Exp(float.MaxValue));
        Assert.Equal(0f, DeterministicMath.Exp(-104f));
        Assert.Equal(0f, DeterministicMath.Exp(float.MinValue));
        Assert.True(float.IsNaN(DeterministicMath.Exp(float.NaN)));
    }

    [Fact]
    public void Exp_is_finite_up_to_the_largest_argument_whose_exp_is_a_float()
    {
        var x = LargestFiniteExpArgument();

        Assert.True(float.IsFinite(DeterministicMath.Exp(x)), $"Exp({x:R}) overflowed");
        Assert.Equal(float.PositiveInfinity, DeterministicMath.Exp(BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(x) + 1)));
    }

    [Fact]
    public void Exp_underflows_gradually_through_the_subnormals()
    {
        for (var x = -103.9f; x < -87.4f; x += 0.01f)
        {
            var expected = Math.Exp(x);
            Assert.True(Math.Abs(DeterministicMath.Exp(x) - expected) <= 2 * float.Epsilon + 2e-7 * expected,
                $"Exp({x:R}) = {DeterministicMath.Exp(x):R}, expected {expected:R}");
        }
    }

    [Fact]
    public void Sigmoid_and_tanh_are_odd_symmetric_as_the_functions_are()
    {
        for (var x = 0f; x < 10f; x += 0.125f)
        {
            Assert.Equal(1f, DeterministicMath.Sigmoid(x) + DeterministicMath.Sigmoid(-x), 1e-6f);
            Assert.Equal(-DeterministicMath.Tanh(x), DeterministicMath.Tanh(-x), 1e-6f);
        }
    }

    /// <summary>The largest float x with e^x ≤ float.MaxValue once rounded (e^x below MaxValue + half an ulp).</summary>
    private static float LargestFiniteExpArgument()
    {
        var x = 88.8f;
        while (double.IsInfinity((float)Math.Exp(x)))
        {
            x = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(x) - 1);
        }
        return x;
    }

    private static float NextSample(float x, float edge)
    {
        // About 300,000 samples, ending exactly on the overflow edge.
        var next = x + 176f / 300_000f;
        return x < edge && next > edge ? edge : next;
    }

    private static long UlpDistance(float a, float b)
    {
        if (a == b)
        {
            return 0;
        }
        if (!float.IsFinite(a) || !float.IsFinite(b))
        {
            return long.MaxValue;
        }
        return Math.Abs((long)BitConverter.SingleToInt32Bits(a) - BitConverter.SingleToInt32Bits(b));
    }
}
