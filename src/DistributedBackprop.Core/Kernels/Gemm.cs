using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DistributedBackprop.Core.Kernels;

/// <summary>
/// Dense matrix products for backprop, row-major, single-threaded (parallelism lives at the slice level).
/// The determinism contract: every output element is ONE fused-multiply-add chain over the inner index in
/// ascending order, starting from zero — <c>acc = 0; for p in 0..inner-1: acc = fma(A[i,p], B[p,j], acc)</c>.
/// Vector512, Vector256 and scalar <see cref="MathF.FusedMultiplyAdd"/> therefore give the same bits, and so does
/// any blocking that keeps each element's chain intact.
/// The three shapes backprop needs map onto this one product:
/// forward <c>Y = X·W</c>; weight gradient <c>dW = Xᵀ·dY</c> (<see cref="MultiplyTransposedA"/>: X read in place, and the
/// canonical tree's pending sums added as each tile is written); input gradient <c>dX = dY·Wᵀ</c> (transpose W first).
/// </summary>
/// <remarks>
/// Implementation: a register-blocked micro-kernel keeps an Mr×Nr tile of C in registers for the whole inner loop
/// (Vector512: 8×32 with 16 accumulators, 8×16 for narrow column tails; Vector256: 4×16 with 8 accumulators).
/// Each step broadcasts A[i,p] and does one FMA per accumulator with a row vector of B, so every accumulator lane
/// is exactly the contract's chain. Full row blocks read A in place (one stream per row); a row tail block is
/// packed into a zero-padded panel. Full-width column panels read B in place; a narrower tail panel is copied,
/// zero padded, into a per-thread buffer. Tiles that do not fit C go through a stack tile and only their valid
/// part is copied out. Padding lanes never feed a valid lane, so tails keep the same chain.
/// </remarks>
public static class Gemm
{
    /// <summary>Rows per packed A panel (the micro-kernels' row block).</summary>
    private const int Mr = 8;

    private enum Path
    {
        Scalar = 0,
        Vector256 = 1,
        Vector512 = 2,
    }

    /// <summary>The hardware path, chosen once per process.</summary>
    private static readonly Path HwPath =
        Vector512.IsHardwareAccelerated ? Path.Vector512 :
        Vector256.IsHardwareAccelerated ? Path.Vector256 : Path.Scalar;

    /// <summary>Name of the path this process uses ("Vector512", "Vector256" or "Scalar"); for probes and logs.</summary>
    public static string HardwarePath => HwPath.ToString();

    [ThreadStatic] private static float[]? t_packA;
    [ThreadStatic] private static float[]? t_packB;
    [ThreadStatic] private static float[]? t_transposed;

    /// <summary>C[rows×cols] = A[rows×inner] · B[inner×cols]; C is overwritten.</summary>
    public static void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int rows, int inner, int cols)
    {
        CheckShapes(a, b, c, rows, inner, cols);
        if (rows == 0 || cols == 0)
        {
            return;
        }
        if (inner == 0)
        {
            c[..(rows * cols)].Clear();
            return;
        }
        switch (HwPath)
        {
            case Path.Vector512:
                MultiplyV512(a, b, c, rows, inner, cols);
                break;
            case Path.Vector256:
                MultiplyV256(a, b, c, rows, inner, cols);
                break;
            default:
                MultiplyScalar(a, b, c, rows, inner, cols);
                break;
        }
    }

    /// <summary>aT[cols×rows] = transpose of a[rows×cols].</summary>
    public static void Transpose(ReadOnlySpan<float> a, Span<float> aT, int rows, int cols)
    {
        if (rows < 0 || cols < 0)
        {
            throw new ArgumentException($"Negative matrix shape {rows}x{cols}.");
        }
        if (a.Length < (long)rows * cols || aT.Length < (long)rows * cols)
        {
            throw new ArgumentException($"Transpose of {rows}x{cols} needs {(long)rows * cols} elements.");
        }
        const int Tile = 32;
        ref var src = ref MemoryMarshal.GetReference(a);
        ref var dst = ref MemoryMarshal.GetReference(aT);
        for (var i0 = 0; i0 < rows; i0 += Tile)
        {
            var i1 = Math.Min(i0 + Tile, rows);
            for (var j0 = 0; j0 < cols; j0 += Tile)
            {
                var j1 = Math.Min(j0 + Tile, cols);
                for (var i = i0; i < i1; i++)
                {
                    ref var srcRow = ref Unsafe.Add(ref src, (nint)i * cols);
                    for (var j = j0; j < j1; j++)
                    {
                        Unsafe.Add(ref dst, (nint)j * rows + i) = Unsafe.Add(ref srcRow, j);
                    }
                }
            }
        }
    }

    /// <summary>
    /// The weight gradient's product, C[rows×cols] = Xᵀ·B for X[inner×rows] (a slice's inputs, one sample per row) and
    /// B[inner×cols], then C = add[K-1] + (… + (add[0] + C)) element by element, add[k] read at
    /// <paramref name="addendOffset"/> + i·cols + j: a worker folds the pending sums of the canonical gradient tree
    /// into a slice's gradient this way. Each product element is the contract's FMA chain and each addition one rounded
    /// float add, so the bits equal transposing X, multiplying and adding the addends one by one; the Vector512 path
    /// reads X in place and adds each tile while it is still in cache (no transpose, no separate pass per addend).
    /// </summary>
    public static void MultiplyTransposedA(ReadOnlySpan<float> x, ReadOnlySpan<float> b, Span<float> c, int rows, int inner,
        int cols, ReadOnlySpan<float[]> addends = default, int addendOffset = 0)
    {
        CheckShapes(x, b, c, rows, inner, cols);
        foreach (var addend in addends)
        {
            if (addendOffset < 0 || addend.Length < addendOffset + (long)rows * cols)
            {
                throw new ArgumentException($"An addend of {addend.Length} is too short for {rows}x{cols} at {addendOffset}.");
            }
        }
        if (rows == 0 || cols == 0)
        {
            return;
        }
        if (HwPath == Path.Vector512 && inner > 0)
        {
            MultiplyV512(x, b, c, rows, inner, cols, transposedA: true, addends, addendOffset);
            return;
        }
        var xT = Buffer(ref t_transposed, rows * inner);
        Transpose(x, xT, inner, rows);
        Multiply(xT, b, c, rows, inner, cols);
        var n = rows * cols;
        foreach (var addend in addends)
        {
            System.Numerics.Tensors.TensorPrimitives.Add(addend.AsSpan(addendOffset, n), c[..n], c[..n]);
        }
    }

    internal static void CheckShapes(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int rows, int inner, int cols)
    {
        if (rows < 0 || inner < 0 || cols < 0)
        {
            throw new ArgumentException($"Negative matrix shape {rows}x{inner}x{cols}.");
        }
        if (a.Length < (long)rows * inner || b.Length < (long)inner * cols || c.Length < (long)rows * cols)
        {
            throw new ArgumentException(
                $"Gemm {rows}x{inner}x{cols}: spans of {a.Length}, {b.Length}, {c.Length} are too short.");
        }
    }

    // ---------------------------------------------------------------- buffers and packing

    private static float[] Buffer(ref float[]? slot, int length)
    {
        var buf = slot;
        if (buf is null || buf.Length < length)
        {
            buf = new float[Math.Max(length, 4096)];
            slot = buf;
        }
        return buf;
    }

    /// <summary>Packs A into ceil(rows/Mr) panels of inner×Mr floats, panel[p*Mr + r] = A[r0 + r, p].</summary>
    private static unsafe void PackA(float* a, float* pa, int rows, int inner)
    {
        for (var r0 = 0; r0 < rows; r0 += Mr)
        {
            var mr = Math.Min(Mr, rows - r0);
            var dst = pa + (nint)r0 * inner;
            for (var r = 0; r < mr; r++)
            {
                var src = a + (nint)(r0 + r) * inner;
                for (var p = 0; p < inner; p++)
                {
                    dst[(nint)p * Mr + r] = src[p];
                }
            }
            for (var r = mr; r < Mr; r++)
            {
                for (var p = 0; p < inner; p++)
                {
                    dst[(nint)p * Mr + r] = 0f;
                }
            }
        }
    }

    /// <summary>Copies B[:, j0..j0+width) into an inner×nr panel, zero padding the columns past width.</summary>
    private static unsafe void PackBTail(float* b, float* pb, int inner, int cols, int j0, int width, int nr)
    {
        for (var p = 0; p < inner; p++)
        {
            var src = b + (nint)p * cols + j0;
            var dst = pb + (nint)p * nr;
            var j = 0;
            for (; j < width; j++)
            {
                dst[j] = src[j];
            }
            for (; j < nr; j++)
            {
                dst[j] = 0f;
            }
        }
    }

    /// <summary>Copies the valid mr×width corner of a tile (row stride ldt) into C.</summary>
    private static unsafe void CopyTile(float* tile, nint ldt, float* c, nint ldc, int mr, int width)
    {
        for (var r = 0; r < mr; r++)
        {
            new ReadOnlySpan<float>(tile + r * ldt, width).CopyTo(new Span<float>(c + r * ldc, width));
        }
    }

    // ---------------------------------------------------------------- Vector512 path: 8×32 and 8×16 tiles

    /// <summary>
    /// A is read in place: its rows (row stride inner) or, when <paramref name="transposedA"/>, as Xᵀ of X[inner×rows]
    /// (A[r, p] = X[p, r], eight adjacent X values per inner step). The addends are added to each tile as it is written.
    /// </summary>
    private static unsafe void MultiplyV512(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int rows, int inner,
        int cols, bool transposedA = false, ReadOnlySpan<float[]> addends = default, int addendOffset = 0)
    {
        var fullRows = rows / Mr * Mr;
        var packA = Buffer(ref t_packA, Mr * inner);
        var packB = Buffer(ref t_packB, inner * 32);
        var tile = stackalloc float[Mr * 32];
        fixed (float* pA = a, pB = b, pC = c, pa = packA, pb = packB)
        {
            // Full 8-row blocks read A in place; only a row tail block is packed, zero padded.
            if (fullRows < rows)
            {
                if (transposedA)
                {
                    PackTransposedA(pA + fullRows, rows, pa, rows - fullRows, inner);
                }
                else
                {
                    PackA(pA + (nint)fullRows * inner, pa, rows - fullRows, inner);
                }
            }
            // Full 32- and 16-wide column panels read B in place; only the last panel, if narrower, is copied (once).
            var lastJ0 = (cols - 1) / 32 * 32;
            var lastWidth = cols - lastJ0;
            if (lastWidth != 32 && lastWidth != 16)
            {
                PackBTail(pB, pb, inner, cols, lastJ0, lastWidth, lastWidth > 16 ? 32 : 16);
            }
            var operands = new Operands(pA, pB, pC, pa, pb, tile, rows, inner, cols, fullRows, transposedA);
            if (transposedA)
            {
                // The weight gradient's shape (many rows, a short inner loop): C and the addends are written and read
                // block of rows after block of rows, in memory order.
                for (var r0 = 0; r0 < rows; r0 += Mr)
                {
                    for (var j0 = 0; j0 < cols; j0 += 32)
                    {
                        Tile(operands, r0, j0, addends, addendOffset);
                    }
                }
            }
            else
            {
                // Few rows, a long inner loop: a panel of B stays in cache across the row blocks.
                for (var j0 = 0; j0 < cols; j0 += 32)
                {
                    for (var r0 = 0; r0 < rows; r0 += Mr)
                    {
                        Tile(operands, r0, j0, addends, addendOffset);
                    }
                }
            }
        }
    }

    private readonly unsafe struct Operands(float* a, float* b, float* c, float* packedA, float* packedB, float* tile, int rows,
        int inner, int cols, int fullRows, bool transposedA)
    {
        public readonly float* A = a, B = b, C = c, PackedA = packedA, PackedB = packedB, Tile = tile;
        public readonly int Rows = rows, Inner = inner, Cols = cols, FullRows = fullRows;
        public readonly bool TransposedA = transposedA;
    }

    /// <summary>The tile of C at rows r0.. and columns j0..: a kernel, the copy of a partial tile, the addends.</summary>
    private static unsafe void Tile(in Operands o, int r0, int j0, ReadOnlySpan<float[]> addends, int addendOffset)
    {
        var width = Math.Min(32, o.Cols - j0);
        var exact = width == 32 || width == 16;
        var bPanel = exact ? o.B + j0 : o.PackedB;
        var ldb = exact ? o.Cols : width > 16 ? 32 : 16;
        var mr = Math.Min(Mr, o.Rows - r0);
        var cTile = o.C + (nint)r0 * o.Cols + j0;
        if (r0 < o.FullRows)
        {
            var dst = exact ? cTile : o.Tile;
            var ldc = exact ? o.Cols : 32;
            if (o.TransposedA)
            {
                if (width > 16)
                {
                    Kernel512x8x32(o.A + r0, o.Rows, bPanel, ldb, o.Inner, dst, ldc);
                }
                else
                {
                    Kernel512x8x16(o.A + r0, o.Rows, bPanel, ldb, o.Inner, dst, ldc);
                }
            }
            else if (width > 16)
            {
                Kernel512x8x32Direct(o.A + (nint)r0 * o.Inner, o.Inner, bPanel, ldb, o.Inner, dst, ldc);
            }
            else
            {
                Kernel512x8x16Direct(o.A + (nint)r0 * o.Inner, o.Inner, bPanel, ldb, o.Inner, dst, ldc);
            }
            if (!exact)
            {
                CopyTile(o.Tile, 32, cTile, o.Cols, Mr, width);
            }
        }
        else
        {
            if (width > 16)
            {
                Kernel512x8x32(o.PackedA, Mr, bPanel, ldb, o.Inner, o.Tile, 32);
            }
            else
            {
                Kernel512x8x16(o.PackedA, Mr, bPanel, ldb, o.Inner, o.Tile, 32);
            }
            CopyTile(o.Tile, 32, cTile, o.Cols, mr, width);
        }
        AddToTile(cTile, o.Cols, mr, width, addends, addendOffset + r0 * o.Cols + j0);
    }

    /// <summary>8×32 tile reading 8 rows of A in place (row stride lda): 16 Vector512 accumulators.</summary>
    private static unsafe void Kernel512x8x32Direct(float* a, nint lda, float* pb, nint ldb, int inner, float* c, nint ldc)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default;
        var a4 = a + 4 * lda;
        var lda2 = 2 * lda;
        var lda3 = 3 * lda;
        for (var p = 0; p < inner; p++)
        {
            var b0 = Vector512.Load(pb);
            var b1 = Vector512.Load(pb + 16);
            var av = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(av, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a[lda]);
            c10 = Vector512.FusedMultiplyAdd(av, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a[lda2]);
            c20 = Vector512.FusedMultiplyAdd(av, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a[lda3]);
            c30 = Vector512.FusedMultiplyAdd(av, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a4[0]);
            c40 = Vector512.FusedMultiplyAdd(av, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a4[lda]);
            c50 = Vector512.FusedMultiplyAdd(av, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
            av = Vector512.Create(a4[lda2]);
            c60 = Vector512.FusedMultiplyAdd(av, b0, c60);
            c61 = Vector512.FusedMultiplyAdd(av, b1, c61);
            av = Vector512.Create(a4[lda3]);
            c70 = Vector512.FusedMultiplyAdd(av, b0, c70);
            c71 = Vector512.FusedMultiplyAdd(av, b1, c71);
            a++;
            a4++;
            pb += ldb;
        }
        c00.Store(c); c01.Store(c + 16); c += ldc;
        c10.Store(c); c11.Store(c + 16); c += ldc;
        c20.Store(c); c21.Store(c + 16); c += ldc;
        c30.Store(c); c31.Store(c + 16); c += ldc;
        c40.Store(c); c41.Store(c + 16); c += ldc;
        c50.Store(c); c51.Store(c + 16); c += ldc;
        c60.Store(c); c61.Store(c + 16); c += ldc;
        c70.Store(c); c71.Store(c + 16);
    }

    /// <summary>8×16 tile reading 8 rows of A in place (row stride lda) instead of a packed panel.</summary>
    private static unsafe void Kernel512x8x16Direct(float* a, nint lda, float* pb, nint ldb, int inner, float* c, nint ldc)
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
        Vector512<float> c4 = default, c5 = default, c6 = default, c7 = default;
        var a4 = a + 4 * lda;
        var lda3 = 3 * lda;
        for (var p = 0; p < inner; p++)
        {
            var b0 = Vector512.Load(pb);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(a[0]), b0, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Create(a[lda]), b0, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Create(a[2 * lda]), b0, c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.Create(a[lda3]), b0, c3);
            c4 = Vector512.FusedMultiplyAdd(Vector512.Create(a4[0]), b0, c4);
            c5 = Vector512.FusedMultiplyAdd(Vector512.Create(a4[lda]), b0, c5);
            c6 = Vector512.FusedMultiplyAdd(Vector512.Create(a4[2 * lda]), b0, c6);
            c7 = Vector512.FusedMultiplyAdd(Vector512.Create(a4[lda3]), b0, c7);
            a++;
            a4++;
            pb += ldb;
        }
        c0.Store(c); c += ldc;
        c1.Store(c); c += ldc;
        c2.Store(c); c += ldc;
        c3.Store(c); c += ldc;
        c4.Store(c); c += ldc;
        c5.Store(c); c += ldc;
        c6.Store(c); c += ldc;
        c7.Store(c);
    }

    /// <summary>8×32 tile: 16 Vector512 accumulators held across the whole inner loop. A[r, p] is read at
    /// <c>pa[p*aStep + r]</c>: a packed panel (aStep Mr), or Xᵀ read in place from X (aStep = X's row length).</summary>
    private static unsafe void Kernel512x8x32(float* pa, nint aStep, float* pb, nint ldb, int inner, float* c, nint ldc)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default;
        for (var p = 0; p < inner; p++)
        {
            var b0 = Vector512.Load(pb);
            var b1 = Vector512.Load(pb + 16);
            var av = Vector512.Create(pa[0]);
            c00 = Vector512.FusedMultiplyAdd(av, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(pa[1]);
            c10 = Vector512.FusedMultiplyAdd(av, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(pa[2]);
            c20 = Vector512.FusedMultiplyAdd(av, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(pa[3]);
            c30 = Vector512.FusedMultiplyAdd(av, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(pa[4]);
            c40 = Vector512.FusedMultiplyAdd(av, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(pa[5]);
            c50 = Vector512.FusedMultiplyAdd(av, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
            av = Vector512.Create(pa[6]);
            c60 = Vector512.FusedMultiplyAdd(av, b0, c60);
            c61 = Vector512.FusedMultiplyAdd(av, b1, c61);
            av = Vector512.Create(pa[7]);
            c70 = Vector512.FusedMultiplyAdd(av, b0, c70);
            c71 = Vector512.FusedMultiplyAdd(av, b1, c71);
            pa += aStep;
            pb += ldb;
        }
        c00.Store(c); c01.Store(c + 16); c += ldc;
        c10.Store(c); c11.Store(c + 16); c += ldc;
        c20.Store(c); c21.Store(c + 16); c += ldc;
        c30.Store(c); c31.Store(c + 16); c += ldc;
        c40.Store(c); c41.Store(c + 16); c += ldc;
        c50.Store(c); c51.Store(c + 16); c += ldc;
        c60.Store(c); c61.Store(c + 16); c += ldc;
        c70.Store(c); c71.Store(c + 16);
    }

    /// <summary>8×16 tile for column tails of at most 16; A as in <see cref="Kernel512x8x32"/>.</summary>
    private static unsafe void Kernel512x8x16(float* pa, nint aStep, float* pb, nint ldb, int inner, float* c, nint ldc)
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
        Vector512<float> c4 = default, c5 = default, c6 = default, c7 = default;
        for (var p = 0; p < inner; p++)
        {
            var b0 = Vector512.Load(pb);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(pa[0]), b0, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Create(pa[1]), b0, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Create(pa[2]), b0, c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.Create(pa[3]), b0, c3);
            c4 = Vector512.FusedMultiplyAdd(Vector512.Create(pa[4]), b0, c4);
            c5 = Vector512.FusedMultiplyAdd(Vector512.Create(pa[5]), b0, c5);
            c6 = Vector512.FusedMultiplyAdd(Vector512.Create(pa[6]), b0, c6);
            c7 = Vector512.FusedMultiplyAdd(Vector512.Create(pa[7]), b0, c7);
            pa += aStep;
            pb += ldb;
        }
        c0.Store(c); c += ldc;
        c1.Store(c); c += ldc;
        c2.Store(c); c += ldc;
        c3.Store(c); c += ldc;
        c4.Store(c); c += ldc;
        c5.Store(c); c += ldc;
        c6.Store(c); c += ldc;
        c7.Store(c);
    }

    /// <summary>Packs columns [0, mr) of X (row length ldx) as an A panel: panel[p*Mr + r] = X[p, r], zero padded.</summary>
    private static unsafe void PackTransposedA(float* x, nint ldx, float* pa, int mr, int inner)
    {
        for (var p = 0; p < inner; p++)
        {
            var src = x + p * ldx;
            var dst = pa + (nint)p * Mr;
            var r = 0;
            for (; r < mr; r++)
            {
                dst[r] = src[r];
            }
            for (; r < Mr; r++)
            {
                dst[r] = 0f;
            }
        }
    }

    /// <summary>
    /// C[r, j] = add[k][offset + r·ldc + j] + C[r, j] for k = 0, 1, … over an mr×width tile just written (still in
    /// cache). The addends are read by reference, not pinned: they are pooled result buffers the GC may move.
    /// </summary>
    private static unsafe void AddToTile(float* c, nint ldc, int mr, int width, ReadOnlySpan<float[]> addends, int offset)
    {
        foreach (var addend in addends)
        {
            ref var a = ref MemoryMarshal.GetArrayDataReference(addend);
            for (var r = 0; r < mr; r++)
            {
                var row = c + r * ldc;
                var at = (nuint)(offset + r * ldc);
                var j = 0;
                for (; j <= width - 16; j += 16)
                {
                    (Vector512.LoadUnsafe(ref a, at + (nuint)j) + Vector512.Load(row + j)).Store(row + j);
                }
                for (; j < width; j++)
                {
                    row[j] = Unsafe.Add(ref a, at + (nuint)j) + row[j];
                }
            }
        }
    }

    // ---------------------------------------------------------------- Vector256 path: 4×16 tiles (16 ymm registers)

    private static unsafe void MultiplyV256(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int rows, int inner, int cols)
    {
        const int Nr = 16;
        const int Mr4 = 4;
        var fullRows = rows / Mr4 * Mr4;
        var packA = Buffer(ref t_packA, Mr * inner);
        var packB = Buffer(ref t_packB, inner * Nr);
        var tile = stackalloc float[Mr4 * Nr];
        fixed (float* pA = a, pB = b, pC = c, pa = packA, pb = packB)
        {
            // Full 4-row blocks read A in place; a row tail (< 4 rows) is packed into an 8-row panel.
            if (fullRows < rows)
            {
                PackA(pA + (nint)fullRows * inner, pa, rows - fullRows, inner);
            }
            for (var j0 = 0; j0 < cols; j0 += Nr)
            {
                var width = Math.Min(Nr, cols - j0);
                float* bPanel;
                nint ldb;
                if (width == Nr)
                {
                    bPanel = pB + j0;
                    ldb = cols;
                }
                else
                {
                    bPanel = pb;
                    ldb = Nr;
                    PackBTail(pB, pb, inner, cols, j0, width, Nr);
                }
                var exact = width == Nr;
                for (var r0 = 0; r0 < fullRows; r0 += Mr4)
                {
                    var cTile = pC + (nint)r0 * cols + j0;
                    var dst = exact ? cTile : tile;
                    var ldc = exact ? cols : Nr;
                    Kernel256x4x16(pA + (nint)r0 * inner, 1, inner, bPanel, ldb, inner, dst, ldc);
                    if (!exact)
                    {
                        CopyTile(tile, Nr, cTile, cols, Mr4, width);
                    }
                }
                if (fullRows < rows)
                {
                    Kernel256x4x16(pa, Mr, 1, bPanel, ldb, inner, tile, Nr);
                    CopyTile(tile, Nr, pC + (nint)fullRows * cols + j0, cols, rows - fullRows, width);
                }
            }
        }
    }

    /// <summary>
    /// 4×16 tile (8 Vector256 accumulators). A[r, p] is read at <c>a[p*pStride + r*rStride]</c>: in place
    /// (pStride 1, rStride lda) or from a packed panel (pStride Mr, rStride 1).
    /// </summary>
    private static unsafe void Kernel256x4x16(float* a, nint pStride, nint rStride, float* pb, nint ldb, int inner, float* c, nint ldc)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector256<float> c20 = default, c21 = default, c30 = default, c31 = default;
        var r2 = 2 * rStride;
        var r3 = 3 * rStride;
        for (var p = 0; p < inner; p++)
        {
            var b0 = Vector256.Load(pb);
            var b1 = Vector256.Load(pb + 8);
            var av = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(av, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
            av = Vector256.Create(a[rStride]);
            c10 = Vector256.FusedMultiplyAdd(av, b0, c10);
            c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
            av = Vector256.Create(a[r2]);
            c20 = Vector256.FusedMultiplyAdd(av, b0, c20);
            c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
            av = Vector256.Create(a[r3]);
            c30 = Vector256.FusedMultiplyAdd(av, b0, c30);
            c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
            a += pStride;
            pb += ldb;
        }
        c00.Store(c); c01.Store(c + 8); c += ldc;
        c10.Store(c); c11.Store(c + 8); c += ldc;
        c20.Store(c); c21.Store(c + 8); c += ldc;
        c30.Store(c); c31.Store(c + 8);
    }

    // ---------------------------------------------------------------- scalar path

    /// <summary>Row-wise axpy form: C[i,:] starts at zero and takes one FMA per p in ascending order.</summary>
    private static void MultiplyScalar(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int rows, int inner, int cols)
    {
        c[..(rows * cols)].Clear();
        for (var i = 0; i < rows; i++)
        {
            var cRow = c.Slice(i * cols, cols);
            for (var p = 0; p < inner; p++)
            {
                var alpha = a[i * inner + p];
                var bRow = b.Slice(p * cols, cols);
                for (var j = 0; j < cRow.Length; j++)
                {
                    cRow[j] = MathF.FusedMultiplyAdd(alpha, bRow[j], cRow[j]);
                }
            }
        }
    }
}
