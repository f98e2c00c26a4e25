using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace DistributedBackprop.Core.Kernels;

/// <summary>
/// Elementwise kernels and the few reductions backprop needs. Elementwise operations are bit-identical whatever the
/// vector width, so TensorPrimitives serves them. Reductions fix their own order: a column sum is one chain down the
/// rows; a sum of squares uses 16 lanes (element i goes to lane i mod 16) combined in a fixed order.
/// </summary>
public static class Elementwise
{
    private const int Lanes = 16;

    /// <summary>y += x</summary>
    public static void AddInPlace(Span<float> y, ReadOnlySpan<float> x) => TensorPrimitives.Add(y, x, y);

    /// <summary>destination = a + b</summary>
    public static void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> destination) =>
        TensorPrimitives.Add(a, b, destination);

    /// <summary>y = add[K-1] + (… + (add[0] + y)), add[k] read from <paramref name="offset"/>: the canonical tree's pending
    /// sums folded into a slice's result (each step one rounded add, as the tree's own).</summary>
    public static void AddAddends(Span<float> y, ReadOnlySpan<float[]> addends, int offset)
    {
        foreach (var addend in addends)
        {
            TensorPrimitives.Add(addend.AsSpan(offset, y.Length), y, y);
        }
    }

    /// <summary>y *= factor</summary>
    public static void ScaleInPlace(Span<float> y, float factor) => TensorPrimitives.Multiply(y, factor, y);

    /// <summary>y /= divisor (a true division, so the mean of a sum is exactly the sum divided by the count).</summary>
    public static void DivideInPlace(Span<float> y, float divisor) => TensorPrimitives.Divide(y, divisor, y);

    /// <summary>sums[j] = Σ_i m[i, j], each column one chain from row 0 down.</summary>
    public static void ColumnSums(ReadOnlySpan<float> m, Span<float> sums, int rows, int cols)
    {
        var s = sums[..cols];
        s.Clear();
        for (var i = 0; i < rows; i++)
        {
            TensorPrimitives.Add(s, m.Slice(i * cols, cols), s);
        }
    }

    /// <summary>Σ x² with a fixed 16-lane order (fused square-accumulate per lane), then lanes summed 0..15 in double.</summary>
    public static double SumOfSquares(ReadOnlySpan<float> x)
    {
        Span<float> lanes = stackalloc float[Lanes];
        var i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var acc = Vector512<float>.Zero;
            for (; i <= x.Length - Lanes; i += Lanes)
            {
                var v = Vector512.Create(x.Slice(i, Lanes));
                acc = Vector512.FusedMultiplyAdd(v, v, acc);
            }
            acc.CopyTo(lanes);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var lo = Vector256<float>.Zero;
            var hi = Vector256<float>.Zero;
            for (; i <= x.Length - Lanes; i += Lanes)
            {
                var a = Vector256.Create(x.Slice(i, 8));
                var b = Vector256.Create(x.Slice(i + 8, 8));
                lo = Vector256.FusedMultiplyAdd(a, a, lo);
                hi = Vector256.FusedMultiplyAdd(b, b, hi);
            }
            lo.CopyTo(lanes);
            hi.CopyTo(lanes[8..]);
        }
        else
        {
            lanes.Clear();
            for (; i <= x.Length - Lanes; i += Lanes)
            {
                for (var k = 0; k < Lanes; k++)
                {
                    lanes[k] = MathF.FusedMultiplyAdd(x[i + k], x[i + k], lanes[k]);
                }
            }
        }
        for (var k = 0; i < x.Length; i++, k++)
        {
            lanes[k] = MathF.FusedMultiplyAdd(x[i], x[i], lanes[k]);
        }
        return SumLanes(lanes);
    }

    /// <summary>
    /// y /= divisor and returns Σ y² of the quotients: the same bits as <see cref="DivideInPlace"/> followed by
    /// <see cref="SumOfSquares"/> (a true division per element, then the same 16-lane order), in one pass where Vector512
    /// runs. A power-of-two divisor (a global batch of 256) multiplies by its reciprocal instead: 2⁻ᵏ is exact, so each
    /// product is the same real number as the quotient and rounds to the same float, and a multiply is cheaper than a
    /// vector division.
    /// </summary>
    public static double DivideAndSumOfSquares(Span<float> y, float divisor)
    {
        if (!Vector512.IsHardwareAccelerated)
        {
            DivideInPlace(y, divisor);
            return SumOfSquares(y);
        }
        Span<float> lanes = stackalloc float[Lanes];
        var acc = Vector512<float>.Zero;
        var i = 0;
        if (IsPowerOfTwo(divisor))
        {
            var reciprocal = Vector512.Create(1f / divisor);
            for (; i <= y.Length - Lanes; i += Lanes)
            {
                var v = Vector512.Create(y.Slice(i, Lanes)) * reciprocal;
                v.CopyTo(y.Slice(i, Lanes));
                acc = Vector512.FusedMultiplyAdd(v, v, acc);
            }
        }
        else
        {
            var d = Vector512.Create(divisor);
            for (; i <= y.Length - Lanes; i += Lanes)
            {
                var v = Vector512.Create(y.Slice(i, Lanes)) / d;
                v.CopyTo(y.Slice(i, Lanes));
                acc = Vector512.FusedMultiplyAdd(v, v, acc);
            }
        }
        acc.CopyTo(lanes);
        for (var k = 0; i < y.Length; i++, k++)
        {
            var q = y[i] / divisor;
            y[i] = q;
            lanes[k] = MathF.FusedMultiplyAdd(q, q, lanes[k]);
        }
        return SumLanes(lanes);
    }

    /// <summary>The lanes summed 0..15 in double.</summary>
    private static double SumLanes(ReadOnlySpan<float> lanes)
    {
        var total = 0.0;
        for (var k = 0; k < Lanes; k++)
        {
            total += lanes[k];
        }
        return total;
    }

    /// <summary>A positive normal power of two whose reciprocal is normal too (so multiplying by it is exact scaling).</summary>
    private static bool IsPowerOfTwo(float x)
    {
        var bits = BitConverter.SingleToInt32Bits(x);
        var exponent = (bits >> 23) & 0xFF;
        return x > 0f && (bits & 0x7FFFFF) == 0 && exponent is > 0 and < 253;
    }

    /// <summary>True when every value is finite (no NaN, no ±Inf).</summary>
    public static bool AllFinite(ReadOnlySpan<float> x)
    {
        for (var i = 0; i < x.Length; i++)
        {
            if (!float.IsFinite(x[i]))
            {
                return false;
            }
        }
        return true;
    }
}
