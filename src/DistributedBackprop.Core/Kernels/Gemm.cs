using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DistributedBackprop.Core.Kernels;

/// <summary>
/// Dense matrix products for backprop, row-major, single-threaded (parallelism lives at the slice level).
/// The determinism contract: every output element is ONE fused-multiply-add chain over the inner index in
/// ascending order, starting from zero — <c>acc = 0; for p in 0..inner-1: acc = fma(A[i,p], B[p,j], acc)</c>.
/// Vector512, Vector256 and scalar <see cref="MathF.FusedMultiplyAdd"/> therefore give the same bits, and so does
/// any blocking that keeps each element's chain intact.
/// The three shapes backprop needs map onto this one product:
/// forward <c>Y = X·W</c>; weight gradient <c>dW = Xᵀ·dY</c> (transpose X first); input gradient <c>dX = dY·Wᵀ</c>
/// (transpose W first, once per weights version).
/// </summary>
public static class Gemm
{
    /// <summary>C[rows×cols] = A[rows×inner] · B[inner×cols]; C is overwritten.</summary>
    public static void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int rows, int inner, int cols)
    {
        CheckShapes(a, b, c, rows, inner, cols);
        c[..(rows * cols)].Clear();
        for (var i = 0; i < rows; i++)
        {
            var cRow = c.Slice(i * cols, cols);
            for (var p = 0; p < inner; p++)
            {
                AxpyFused(a[i * inner + p], b.Slice(p * cols, cols), cRow);
            }
        }
    }

    /// <summary>aT[cols×rows] = transpose of a[rows×cols].</summary>
    public static void Transpose(ReadOnlySpan<float> a, Span<float> aT, int rows, int cols)
    {
        if (a.Length < rows * cols || aT.Length < rows * cols)
        {
            throw new ArgumentException($"Transpose of {rows}x{cols} needs {rows * cols} elements.");
        }
        for (var i = 0; i < rows; i++)
        {
            for (var j = 0; j < cols; j++)
            {
                aT[j * rows + i] = a[i * cols + j];
            }
        }
    }

    internal static void CheckShapes(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int rows, int inner, int cols)
    {
        if (rows < 0 || inner < 0 || cols < 0)
        {
            throw new ArgumentException($"Negative matrix shape {rows}x{inner}x{cols}.");
        }
        if (a.Length < rows * inner || b.Length < inner * cols || c.Length < rows * cols)
        {
            throw new ArgumentException(
                $"Gemm {rows}x{inner}x{cols}: spans of {a.Length}, {b.Length}, {c.Length} are too short.");
        }
    }

    /// <summary>y[j] = fma(alpha, x[j], y[j]) for every j: one step of each element's chain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AxpyFused(float alpha, ReadOnlySpan<float> x, Span<float> y)
    {
        var j = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            for (; j <= y.Length - Vector512<float>.Count; j += Vector512<float>.Count)
            {
                var r = Vector512.FusedMultiplyAdd(va, Vector512.Create(x.Slice(j, Vector512<float>.Count)),
                    Vector512.Create(y.Slice(j, Vector512<float>.Count)));
                r.CopyTo(y.Slice(j, Vector512<float>.Count));
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(alpha);
            for (; j <= y.Length - Vector256<float>.Count; j += Vector256<float>.Count)
            {
                var r = Vector256.FusedMultiplyAdd(va, Vector256.Create(x.Slice(j, Vector256<float>.Count)),
                    Vector256.Create(y.Slice(j, Vector256<float>.Count)));
                r.CopyTo(y.Slice(j, Vector256<float>.Count));
            }
        }
        for (; j < y.Length; j++)
        {
            y[j] = MathF.FusedMultiplyAdd(alpha, x[j], y[j]);
        }
    }
}
