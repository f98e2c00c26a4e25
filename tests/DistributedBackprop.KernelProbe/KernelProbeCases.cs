using System.Runtime.InteropServices;
using System.Security.Cryptography;
using DistributedBackprop.Core.Kernels;

namespace DistributedBackprop.KernelProbe;

/// <summary>
/// Fixed seeded kernel cases whose output bits are hashed. Compiled into both the probe (child process) and the
/// core tests (in-process), so the two sides run exactly the same cases.
/// </summary>
public static class KernelProbeCases
{
    /// <summary>(rows, inner, cols) products: odd shapes, tails, and the MLP 784-256-128-10 shapes.</summary>
    public static readonly (int Rows, int Inner, int Cols)[] Shapes =
    [
        (1, 1, 1), (7, 13, 33), (5, 784, 17), (131, 3, 257), (9, 31, 47), (3, 5, 16), (17, 2, 48),
        (64, 784, 256), (64, 256, 128), (64, 128, 10),
        (784, 64, 256), (256, 64, 128), (128, 64, 10),
        (64, 128, 256), (64, 10, 128),
        (32, 784, 256), (128, 256, 128), (128, 32, 10),
    ];

    /// <summary>Uniform values in [-scale, scale) from a seeded generator.</summary>
    public static float[] Random(int length, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var x = new float[length];
        for (var i = 0; i < x.Length; i++)
        {
            x[i] = (rng.NextSingle() * 2f - 1f) * scale;
        }
        return x;
    }

    /// <summary>SHA-256 (hex) over the bits of every case's Gemm, Transpose and weight-gradient output and of the
    /// coordinator's reductions.</summary>
    public static string Hash()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (var k = 0; k < Shapes.Length; k++)
        {
            var (rows, inner, cols) = Shapes[k];
            var a = Random(rows * inner, 1000 + k);
            var b = Random(inner * cols, 2000 + k, 3f);
            var c = new float[rows * cols];
            Gemm.Multiply(a, b, c, rows, inner, cols);
            sha.AppendData(MemoryMarshal.AsBytes(c.AsSpan()));
            var aT = new float[rows * inner];
            Gemm.Transpose(a, aT, rows, inner);
            sha.AppendData(MemoryMarshal.AsBytes(aT.AsSpan()));
            // The weight gradient's form: a read as X (rows samples × inner features), dW = Xᵀ·dY, two tree addends.
            var dY = Random(rows * cols, 3000 + k, 2f);
            var addends = new[] { Random(inner * cols + 2, 4000 + k, 40f), Random(inner * cols + 2, 5000 + k, 40f) };
            var dW = new float[inner * cols];
            Gemm.MultiplyTransposedA(a, dY, dW, inner, rows, cols, addends, 2);
            sha.AppendData(MemoryMarshal.AsBytes(dW.AsSpan()));
        }
        // The coordinator's reductions: the sum of squares alone and fused with the division by the batch.
        var g = Random(100_003, 6000, 30f);
        sha.AppendData(BitConverter.GetBytes(Elementwise.SumOfSquares(g)));
        sha.AppendData(BitConverter.GetBytes(Elementwise.DivideAndSumOfSquares(g, 256f)));
        sha.AppendData(MemoryMarshal.AsBytes(g.AsSpan()));
        return Convert.ToHexString(sha.GetHashAndReset());
    }
}
