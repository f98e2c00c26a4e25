using DistributedBackprop.Core.Kernels;
using DistributedBackprop.Core.Model;

namespace DistributedBackprop.Core.Training;

/// <summary>
/// The parameter vector cut into fixed blocks, each inside one layer, of at most <see cref="BlockSize"/> values. A
/// step's squared norms are summed per block (the fixed lane tree of <see cref="Elementwise.SumOfSquares"/>), then
/// combined in a fixed tree over block ids (<see cref="Combine"/>): the global norm and every layer's norm are then the
/// same bits whether one process squares the whole vector or range owners square their ranges, for any number of
/// ranges. Ranges (<see cref="Ranges"/>) are cut on block boundaries for that reason.
/// </summary>
public sealed class ParameterBlocks
{
    /// <summary>Values per block: small enough to balance ranges over a few nodes, large enough that the squares are few.</summary>
    public const int BlockSize = 8192;

    private readonly int[] _starts;
    private readonly int[] _layerFirstBlock;

    public ParameterBlocks(Network network)
    {
        var starts = new List<int>();
        _layerFirstBlock = new int[network.Layers.Count + 1];
        for (var l = 0; l < network.Layers.Count; l++)
        {
            _layerFirstBlock[l] = starts.Count;
            for (var at = network.ParameterOffsets[l]; at < network.ParameterOffsets[l + 1]; at += BlockSize)
            {
                starts.Add(at);
            }
        }
        _layerFirstBlock[^1] = starts.Count;
        starts.Add(network.ParameterCount);
        _starts = starts.ToArray();
        ParameterCount = network.ParameterCount;
    }

    public int ParameterCount { get; }

    /// <summary>How many blocks there are.</summary>
    public int Count => _starts.Length - 1;

    public int Start(int block) => _starts[block];

    public int End(int block) => _starts[block + 1];

    /// <summary>The blocks of layer <paramref name="layer"/>: [first, end).</summary>
    public (int First, int End) LayerBlocks(int layer) => (_layerFirstBlock[layer], _layerFirstBlock[layer + 1]);

    /// <summary>True when a block starts at <paramref name="offset"/> (or it is the end of the parameters).</summary>
    public bool IsBlockStart(int offset) => Array.BinarySearch(_starts, offset) >= 0;

    /// <summary>The block that starts at <paramref name="offset"/>; throws when no block starts there.</summary>
    public int BlockAt(int offset)
    {
        var block = Array.BinarySearch(_starts, offset);
        if (block < 0 || block == Count && offset != ParameterCount)
        {
            throw new ArgumentException($"No block starts at {offset}.", nameof(offset));
        }
        return block;
    }

    /// <summary>
    /// Divides the parameters [<paramref name="first"/>, <paramref name="end"/>) of a step's sum (held in
    /// <paramref name="values"/>, which starts at <paramref name="first"/>) by the batch, and writes each block's sum of
    /// squares into <paramref name="squares"/> (indexed from the block at <paramref name="first"/>).
    /// </summary>
    public void DivideAndSquare(Span<float> values, int first, int end, float divisor, Span<double> squares)
    {
        var firstBlock = BlockAt(first);
        var endBlock = BlockAt(end);
        for (var b = firstBlock; b < endBlock; b++)
        {
            squares[b - firstBlock] = Elementwise.DivideAndSumOfSquares(values[(Start(b) - first)..(End(b) - first)], divisor);
        }
    }

    /// <summary>
    /// The sum of <paramref name="squares"/> in a fixed tree over their ids: halves split at the largest power of two
    /// below the count, so the tree depends on the count alone.
    /// </summary>
    public static double Combine(ReadOnlySpan<double> squares)
    {
        if (squares.Length == 0)
        {
            return 0;
        }
        if (squares.Length == 1)
        {
            return squares[0];
        }
        var half = 1;
        while (half * 2 < squares.Length)
        {
            half *= 2;
        }
        return Combine(squares[..half]) + Combine(squares[half..]);
    }

    /// <summary>
    /// <paramref name="count"/> contiguous ranges of the result vector (length <paramref name="resultLength"/>: the
    /// parameters, then the statistics, loss and correct count) cut on block boundaries, as equal in size as blocks allow;
    /// the last range also holds everything after the parameters. Fewer ranges than asked when there are fewer blocks.
    /// </summary>
    public IReadOnlyList<(int First, int End)> Ranges(int count, int resultLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        count = Math.Min(count, Math.Max(1, Count));
        var ranges = new List<(int, int)>(count);
        var block = 0;
        for (var r = 0; r < count; r++)
        {
            var first = _starts[block];
            if (r == count - 1)
            {
                ranges.Add((first, resultLength));
                break;
            }
            var target = (long)ParameterCount * (r + 1) / count;
            // At least one block each, and leave one for every range still to come.
            block++;
            while (block < Count - (count - 1 - r) && _starts[block] < target)
            {
                block++;
            }
            ranges.Add((first, _starts[block]));
        }
        return ranges;
    }
}
