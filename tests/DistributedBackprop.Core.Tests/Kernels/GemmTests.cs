using DistributedBackprop.Core.Kernels;
using DistributedBackprop.KernelProbe;
using Xunit;

namespace DistributedBackprop.Core.Tests.Kernels;

public class GemmTests
{
    /// <summary>The contract, literally: each C[i,j] is one FMA chain over p ascending from +0.</summary>
    private static float[] Reference(float[] a, float[] b, int rows, int inner, int cols)
    {
        var c = new float[rows * cols];
        for (var i = 0; i < rows; i++)
        {
            for (var j = 0; j < cols; j++)
            {
                var acc = 0f;
                for (var p = 0; p < inner; p++)
                {
                    acc = MathF.FusedMultiplyAdd(a[i * inner + p], b[p * cols + j], acc);
                }
                c[i * cols + j] = acc;
            }
        }
        return c;
    }

    private static void AssertSameBits(float[] expected, ReadOnlySpan<float> actual, int cols, string what)
    {
        for (var k = 0; k < expected.Length; k++)
        {
            if (BitConverter.SingleToInt32Bits(expected[k]) != BitConverter.SingleToInt32Bits(actual[k]))
            {
                Assert.Fail($"{what}: C[{k / cols},{k % cols}] = {actual[k]:R} but the reference chain gives {expected[k]:R}.");
            }
        }
    }

    public static TheoryData<int, int, int> Shapes()
    {
        var shapes = new List<(int, int, int)>(KernelProbeCases.Shapes);
        int[][] extra =
        [
            [2, 2, 2], [8, 1, 32], [8, 7, 31], [9, 7, 33], [15, 9, 16], [16, 9, 15], [1, 100, 1], [4, 3, 65],
            [11, 17, 20], [6, 5, 48], [33, 40, 100], [13, 6, 10], [24, 1, 16],
        ];
        foreach (var s in extra)
        {
            shapes.Add((s[0], s[1], s[2]));
        }
        foreach (var n in new[] { 32, 64, 128 })
        {
            shapes.Add((n, 784, 256));
            shapes.Add((n, 256, 128));
            shapes.Add((n, 128, 10));
            shapes.Add((784, n, 256));
            shapes.Add((256, n, 128));
            shapes.Add((128, n, 10));
            shapes.Add((n, 128, 256));
            shapes.Add((n, 10, 128));
        }
        var data = new TheoryData<int, int, int>();
        foreach (var (r, i, c) in shapes.Distinct())
        {
            data.Add(r, i, c);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Multiply_MatchesReferenceChainBitForBit(int rows, int inner, int cols)
    {
        var a = KernelProbeCases.Random(rows * inner, rows * 31 + inner);
        var b = KernelProbeCases.Random(inner * cols, cols * 17 + inner, 5f);
        var c = new float[rows * cols];
        c.AsSpan().Fill(float.NaN); // C is overwritten, never accumulated into
        Gemm.Multiply(a, b, c, rows, inner, cols);
        AssertSameBits(Reference(a, b, rows, inner, cols), c, cols, $"{rows}x{inner}x{cols} on {Gemm.HardwarePath}");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MultiplyTransposedA_is_the_product_with_the_transpose_then_each_addend_added_in_turn(int rows, int inner, int cols)
    {
        // X is inner×rows (a slice's inputs); the weight gradient's product is Xᵀ·B.
        var x = KernelProbeCases.Random(inner * rows, rows * 13 + inner);
        var b = KernelProbeCases.Random(inner * cols, cols * 7 + inner, 5f);
        var xT = new float[rows * inner];
        Gemm.Transpose(x, xT, inner, rows);
        const int offset = 5;
        var addends = Enumerable.Range(0, 3).Select(k => KernelProbeCases.Random(offset + rows * cols + 3, 900 + k, 50f)).ToArray();
        for (var k = 0; k <= addends.Length; k++)
        {
            var expected = Reference(xT, b, rows, inner, cols);
            foreach (var addend in addends.Take(k))
            {
                for (var i = 0; i < expected.Length; i++)
                {
                    expected[i] = addend[offset + i] + expected[i];
                }
            }
            var c = new float[rows * cols];
            c.AsSpan().Fill(float.NaN);
            Gemm.MultiplyTransposedA(x, b, c, rows, inner, cols, addends.AsSpan(0, k), offset);
            AssertSameBits(expected, c, cols, $"{rows}x{inner}x{cols} with {k} addends on {Gemm.HardwarePath}");
        }
    }

    [Fact]
    public void Multiply_SpecialValuesFollowTheChain()
    {
        // Signed zeros, infinities, NaN, huge and tiny values: still exactly the scalar chain's bits.
        float[] pool = [0f, -0f, 1f, -1f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 3e38f, -3e38f,
            1e-45f, -1e-40f, 0.1f, 16777217f];
        var rng = new Random(7);
        const int rows = 11, inner = 9, cols = 37;
        var a = new float[rows * inner];
        var b = new float[inner * cols];
        for (var k = 0; k < a.Length; k++)
        {
            a[k] = pool[rng.Next(pool.Length)];
        }
        for (var k = 0; k < b.Length; k++)
        {
            b[k] = pool[rng.Next(pool.Length)];
        }
        var c = new float[rows * cols];
        Gemm.Multiply(a, b, c, rows, inner, cols);
        var expected = Reference(a, b, rows, inner, cols);
        for (var k = 0; k < c.Length; k++)
        {
            // NaN payloads may legitimately differ; everything else must match bit for bit.
            if (float.IsNaN(expected[k]))
            {
                Assert.True(float.IsNaN(c[k]), $"C[{k}] should be NaN, got {c[k]:R}.");
            }
            else
            {
                Assert.Equal(BitConverter.SingleToInt32Bits(expected[k]), BitConverter.SingleToInt32Bits(c[k]));
            }
        }
    }

    [Fact]
    public void Multiply_ZeroInnerGivesZerosAndEmptyShapesAreNoOps()
    {
        var c = new float[12];
        c.AsSpan().Fill(5f);
        Gemm.Multiply([], [], c, 3, 0, 4);
        Assert.All(c, x => Assert.Equal(0, BitConverter.SingleToInt32Bits(x)));
        Gemm.Multiply([], [1f, 2f], c, 0, 1, 2);
        Gemm.Multiply([1f, 2f], [], c, 2, 1, 0);
    }

    [Fact]
    public void Multiply_LeavesTheRestOfLongerSpansAlone()
    {
        const int rows = 9, inner = 5, cols = 19;
        var a = KernelProbeCases.Random(rows * inner + 7, 3);
        var b = KernelProbeCases.Random(inner * cols + 7, 4);
        var c = new float[rows * cols + 40];
        c.AsSpan(rows * cols).Fill(42f);
        Gemm.Multiply(a, b, c, rows, inner, cols);
        Assert.All(c[(rows * cols)..], x => Assert.Equal(42f, x));
        AssertSameBits(Reference(a, b, rows, inner, cols), c, cols, "long spans");
    }

    [Fact]
    public void Multiply_RejectsShortSpansAndNegativeShapes()
    {
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(new float[5], new float[6], new float[4], 2, 3, 2));
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(new float[6], new float[6], new float[3], 2, 3, 2));
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(new float[6], new float[6], new float[4], -2, 3, 2));
    }

    [Fact]
    public async Task Multiply_ConcurrentCallsOnManyThreadsGiveTheSameBits()
    {
        // Per-thread packing buffers: concurrent calls with different shapes must not interfere.
        (int R, int I, int C)[] shapes = [(64, 784, 256), (784, 64, 256), (37, 29, 70), (128, 64, 10)];
        var inputs = shapes.Select((s, k) => (s, a: KernelProbeCases.Random(s.R * s.I, k), b: KernelProbeCases.Random(s.I * s.C, k + 50)))
            .ToArray();
        var expected = inputs.Select(x => Reference(x.a, x.b, x.s.R, x.s.I, x.s.C)).ToArray();
        var tasks = Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            for (var round = 0; round < 6; round++)
            {
                var k = (t + round) % inputs.Length;
                var (s, a, b) = inputs[k];
                var c = new float[s.R * s.C];
                Gemm.Multiply(a, b, c, s.R, s.I, s.C);
                AssertSameBits(expected[k], c, s.C, $"thread {t} round {round}");
            }
        }));
        await Task.WhenAll(tasks);
    }

    [Fact]
    public void Multiply_DoesNotAllocateInSteadyState()
    {
        (int R, int I, int C)[] shapes = [(64, 784, 256), (784, 64, 256), (13, 6, 10), (9, 7, 33), (64, 10, 128)];
        var buffers = shapes.Select(s => (s, a: new float[s.R * s.I], b: new float[s.I * s.C], c: new float[s.R * s.C])).ToArray();
        var addends = new[] { new float[784 * 256], new float[784 * 256] };
        foreach (var (s, a, b, c) in buffers)
        {
            Gemm.Multiply(a, b, c, s.R, s.I, s.C); // warm-up: grows the per-thread buffers once
            Gemm.MultiplyTransposedA(a, b, c, s.R, s.I, s.C, addends, 0);
        }
        // Steady state: three rounds in a row that allocate nothing. The runtime itself may allocate once on this
        // thread while the methods tier up (CI once saw 5,080 bytes in the first rounds); a kernel that allocates per
        // call allocates in every round and never gets there.
        var perRound = new List<long>();
        var zeroRounds = 0;
        while (zeroRounds < 3 && perRound.Count < 200)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            foreach (var (s, a, b, c) in buffers)
            {
                Gemm.Multiply(a, b, c, s.R, s.I, s.C);
                Gemm.MultiplyTransposedA(a, b, c, s.R, s.I, s.C, addends, 0);
            }
            perRound.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            zeroRounds = perRound[^1] == 0 ? zeroRounds + 1 : 0;
        }
        Assert.True(zeroRounds == 3, $"bytes allocated per round: {string.Join(", ", perRound.Take(20))}");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 7)]
    [InlineData(32, 32)]
    [InlineData(33, 65)]
    [InlineData(64, 784)]
    [InlineData(784, 64)]
    [InlineData(256, 128)]
    [InlineData(10, 128)]
    [InlineData(0, 5)]
    public void Transpose_MatchesNaive(int rows, int cols)
    {
        var a = KernelProbeCases.Random(rows * cols, rows + 1000 * cols);
        var aT = new float[rows * cols];
        Gemm.Transpose(a, aT, rows, cols);
        for (var i = 0; i < rows; i++)
        {
            for (var j = 0; j < cols; j++)
            {
                Assert.Equal(BitConverter.SingleToInt32Bits(a[i * cols + j]), BitConverter.SingleToInt32Bits(aT[j * rows + i]));
            }
        }
        var back = new float[rows * cols];
        Gemm.Transpose(aT, back, cols, rows);
        Assert.Equal(a, back);
    }

    [Fact]
    public void Transpose_RejectsShortSpans()
    {
        Assert.Throws<ArgumentException>(() => Gemm.Transpose(new float[5], new float[6], 2, 3));
        Assert.Throws<ArgumentException>(() => Gemm.Transpose(new float[6], new float[5], 2, 3));
    }
}
