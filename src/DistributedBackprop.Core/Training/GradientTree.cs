namespace DistributedBackprop.Core.Training;

/// <summary>
/// The one canonical binary tree over slice ids 0..S-1 along which every result is summed. Node (level, index) covers
/// slices [index·2^level, min((index+1)·2^level, S)); its sum is left + right, or the left child alone when the right
/// covers nothing. Whoever computes which slice, every float addition happens in the same order, so the sum's bits are
/// the same for one process, any number of workers and any re-assignment.
/// </summary>
public readonly record struct TreeNode(int Level, int Index)
{
    public int First => Index << Level;
    public int End(int sliceCount) => Math.Min((Index + 1) << Level, sliceCount);
    public TreeNode Parent => new(Level + 1, Index >> 1);
    public TreeNode Sibling => new(Level, Index ^ 1);
    public bool IsLeft => (Index & 1) == 0;

    // The generated record ToString would print Parent, whose Parent … recurses until the stack overflows.
    public override string ToString() => $"TreeNode {{ Level = {Level}, Index = {Index} }}";
}

public static class GradientTree
{
    /// <summary>Level of the root: the smallest L with 2^L ≥ S.</summary>
    public static int RootLevel(int sliceCount)
    {
        var level = 0;
        while ((1 << level) < sliceCount)
        {
            level++;
        }
        return level;
    }

    /// <summary>The maximal aligned subtrees that exactly cover the run of slices [first, end).</summary>
    public static List<TreeNode> Cover(int first, int end, int sliceCount)
    {
        var nodes = new List<TreeNode>();
        var root = RootLevel(sliceCount);
        var position = first;
        while (position < end)
        {
            var level = 0;
            while (level < root
                   && position % (1 << (level + 1)) == 0
                   && Math.Min(position + (1 << (level + 1)), sliceCount) <= end)
            {
                level++;
            }
            var node = new TreeNode(level, position >> level);
            nodes.Add(node);
            position = node.End(sliceCount);
        }
        return nodes;
    }
}

/// <summary>
/// Reusable result buffers of one length, shared by reducers on several threads. It keeps at most
/// <see cref="Capacity"/> free buffers: a reducer also returns buffers it never rented (a remote worker's result,
/// deserialized into a fresh array), and without a bound every such result stayed in the pool for the life of the
/// process — one parameter vector a step on the coordinator's node. Buffers past the capacity, or of another length,
/// are left to the GC.
/// </summary>
public sealed class BufferPool
{
    private readonly Stack<float[]> _free = new();

    /// <param name="length">The length of every buffer.</param>
    /// <param name="capacity">How many free buffers to keep: at least what one step holds at once, so a step in one
    /// process allocates nothing (see <see cref="ForSlices"/>).</param>
    public BufferPool(int length, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Length = length;
        Capacity = capacity;
    }

    /// <summary>
    /// A pool for steps of <paramref name="sliceCount"/> slices: the workers' trees hold at most one buffer per slice,
    /// and the coordinator's tree as many again.
    /// </summary>
    public static BufferPool ForSlices(int length, int sliceCount) => new(length, 2 * Math.Max(1, sliceCount) + 2);

    public int Length { get; }

    public int Capacity { get; }

    /// <summary>Free buffers held now.</summary>
    public int FreeCount
    {
        get
        {
            lock (_free)
            {
                return _free.Count;
            }
        }
    }

    public float[] Rent()
    {
        lock (_free)
        {
            if (_free.Count > 0)
            {
                return _free.Pop();
            }
        }
        return new float[Length];
    }

    public void Return(float[] buffer)
    {
        if (buffer.Length != Length)
        {
            return;
        }
        lock (_free)
        {
            if (_free.Count < Capacity)
            {
                _free.Push(buffer);
            }
        }
    }
}

/// <summary>
/// Completes the canonical tree from node sums as they arrive (leaves or whole subtrees, in any order). A node whose
/// slices are already covered is refused (a duplicate or overlapping result). Buffers handed to <see cref="Add"/> are
/// owned by the reducer from then on; buffers freed by combining go back to the pool, or, for a reducer that rents
/// (a compute thread's), stay with it as spares for its next <see cref="Rent"/>: a worker's compute threads then do
/// not meet at the shared pool's lock after every slice (that lock showed up as 5 % of a step in a sampled profile).
/// </summary>
public sealed class GradientTreeReducer
{
    private readonly Dictionary<TreeNode, float[]> _pending = [];
    private readonly Stack<float[]> _spares = new();
    private readonly bool _keepSpares;
    private List<(float[] Left, float[] Right)>? _deferred;
    private readonly BufferPool _pool;
    private readonly bool[] _covered;
    private readonly int _rootLevel;
    private float[]? _root;

    public GradientTreeReducer(int sliceCount, BufferPool pool, bool keepSpares = false)
    {
        _keepSpares = keepSpares;
        SliceCount = sliceCount;
        _pool = pool;
        Length = pool.Length;
        _covered = new bool[sliceCount];
        _rootLevel = GradientTree.RootLevel(sliceCount);
    }

    public int SliceCount { get; }
    public int Length { get; }
    public bool IsComplete => _root is not null;
    public int CoveredSlices { get; private set; }

    /// <summary>The full sum, once every slice has arrived.</summary>
    public float[] Root => _root ?? throw new InvalidOperationException("The tree is not complete yet.");

    /// <summary>Whether any slice of the node is already covered.</summary>
    public bool Overlaps(TreeNode node)
    {
        for (var s = node.First; s < node.End(SliceCount); s++)
        {
            if (_covered[s])
            {
                return true;
            }
        }
        return false;
    }

    public bool IsCovered(int slice) => _covered[slice];

    public float[] Rent() => _spares.TryPop(out var spare) ? spare : _pool.Rent();

    /// <summary>Adds a node's sum; false (and the buffer is kept for reuse) when it overlaps what arrived before.</summary>
    public bool Add(TreeNode node, float[] sum)
    {
        if (node.Level > _rootLevel || node.First >= SliceCount || sum.Length < Length)
        {
            throw new ArgumentException($"Node {node} does not belong to a tree of {SliceCount} slices of length {Length}.");
        }
        if (Overlaps(node))
        {
            _pool.Return(sum);
            return false;
        }
        for (var s = node.First; s < node.End(SliceCount); s++)
        {
            _covered[s] = true;
        }
        CoveredSlices += node.End(SliceCount) - node.First;
        Settle(node, sum);
        return true;
    }

    /// <summary>
    /// For a leaf about to be computed by this reducer's thread: fills <paramref name="addends"/> with the pending sums the
    /// leaf will be combined with on its way up the tree, lowest level first, and returns the node that combination is.
    /// Compute the leaf with them added (<see cref="SliceComputer"/>), then hand the result to <see cref="AddCombined"/>:
    /// the same float additions as adding the leaf alone, without a pass per level over the whole vector.
    /// </summary>
    public TreeNode PendingAddends(int slice, List<float[]> addends)
    {
        addends.Clear();
        var node = new TreeNode(0, slice);
        while (node.Level < _rootLevel)
        {
            var sibling = node.Sibling;
            if (node.IsLeft && sibling.First >= SliceCount)
            {
                node = node.Parent;
                continue;
            }
            if (!_pending.TryGetValue(sibling, out var other))
            {
                break;
            }
            addends.Add(other);
            node = node.Parent;
        }
        return node;
    }

    /// <summary>Takes the sum of <paramref name="node"/> as <see cref="PendingAddends"/> planned it for the leaf
    /// <paramref name="slice"/>, releasing the pending sums that went into it.</summary>
    public void AddCombined(int slice, TreeNode node, float[] sum)
    {
        if (slice < 0 || slice >= SliceCount || _covered[slice])
        {
            throw new ArgumentException($"Slice {slice} is outside the tree or already covered.");
        }
        var current = new TreeNode(0, slice);
        while (current.Level < node.Level)
        {
            var sibling = current.Sibling;
            if (_pending.Remove(sibling, out var folded))
            {
                Release(folded);
            }
            else if (!(current.IsLeft && sibling.First >= SliceCount))
            {
                throw new InvalidOperationException($"{node} was not planned for slice {slice}: {sibling} is not pending.");
            }
            current = current.Parent;
        }
        _covered[slice] = true;
        CoveredSlices++;
        Settle(node, sum);
    }

    /// <summary>
    /// While set, a combination of two sums is recorded (left, right) instead of done: the caller performs left += right
    /// for each, in order, on whatever threads and element ranges it likes, then returns the right buffers to the pool.
    /// </summary>
    public void DeferAdditions(List<(float[] Left, float[] Right)>? additions) => _deferred = additions;

    /// <summary>Nodes held but not yet combined into a parent (for a worker: the sums it returns).</summary>
    public IEnumerable<KeyValuePair<TreeNode, float[]>> Pending => _pending;

    /// <summary>Hands the pending nodes (or the root, once complete) over (to be added to another reducer) and forgets them.</summary>
    public List<KeyValuePair<TreeNode, float[]>> TakePending()
    {
        var nodes = _pending.ToList();
        _pending.Clear();
        if (_root is not null)
        {
            nodes.Add(new(new TreeNode(_rootLevel, 0), _root));
            _root = null;
        }
        return nodes;
    }

    /// <summary>Forgets everything, returning the buffers to the pool.</summary>
    public void Reset()
    {
        foreach (var buffer in _pending.Values)
        {
            _pool.Return(buffer);
        }
        _pending.Clear();
        if (_root is not null)
        {
            _pool.Return(_root);
            _root = null;
        }
        Array.Clear(_covered);
        CoveredSlices = 0;
    }

    private void Release(float[] buffer)
    {
        if (_keepSpares)
        {
            _spares.Push(buffer);
        }
        else
        {
            _pool.Return(buffer);
        }
    }

    private void Settle(TreeNode node, float[] sum)
    {
        while (true)
        {
            if (node.Level == _rootLevel)
            {
                _root = sum;
                return;
            }
            var sibling = node.Sibling;
            if (node.IsLeft && sibling.First >= SliceCount)
            {
                // The right child covers no slice: the parent is the left child unchanged.
                node = node.Parent;
                continue;
            }
            if (!_pending.Remove(sibling, out var other))
            {
                _pending[node] = sum;
                return;
            }
            var (left, right) = node.IsLeft ? (sum, other) : (other, sum);
            if (_deferred is not null)
            {
                _deferred.Add((left, right));
            }
            else
            {
                Kernels.Elementwise.Add(left.AsSpan(0, Length), right.AsSpan(0, Length), left.AsSpan(0, Length));
                Release(right);
            }
            sum = left;
            node = node.Parent;
        }
    }
}
