using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Model;

namespace DistributedBackprop.Core.Training;

/// <summary>
/// Computes a contiguous run of slices of one step on a few threads — what one worker does — and returns the sums of
/// the maximal aligned subtrees of the canonical tree that the run covers (the whole root when it covers every slice).
/// Each thread reduces its own sub-run; the pieces are then combined along the same tree, so the bits do not depend on
/// the thread count.
/// </summary>
public sealed class SliceRunner : IDisposable
{
    private readonly ComputeTeam _team;
    private readonly Network _network;
    private readonly int _threads;
    private readonly Workspace[] _workspaces;
    private readonly GradientTreeReducer[] _threadReducers;
    private readonly List<float[]>[] _threadAddends;
    private readonly GradientTreeReducer _runReducer;
    private readonly float[]?[] _prepared;
    private readonly List<(float[] Left, float[] Right)> _combine = [];
    private int _finished;
    private int _planned;
    private int _failed;

    public SliceRunner(Network network, int sliceSize, int sliceCount, int threads, BufferPool pool)
    {
        _network = network;
        SliceSize = sliceSize;
        SliceCount = sliceCount;
        _threads = Math.Clamp(threads, 1, sliceCount);
        _workspaces = new Workspace[_threads];
        _threadReducers = new GradientTreeReducer[_threads];
        _threadAddends = new List<float[]>[_threads];
        for (var t = 0; t < _threads; t++)
        {
            _workspaces[t] = new Workspace(network, sliceSize);
            _threadReducers[t] = new GradientTreeReducer(sliceCount, pool, keepSpares: true);
            _threadAddends[t] = new List<float[]>(GradientTree.RootLevel(sliceCount));
        }
        _runReducer = new GradientTreeReducer(sliceCount, pool);
        // What backward derives from the weights alone (Wᵀ of the layers after the first), once per step for all threads.
        _prepared = network.Layers.Select((layer, l) => l > 0 && layer.PreparedSize > 0 ? new float[layer.PreparedSize] : null)
            .ToArray();
        foreach (var workspace in _workspaces)
        {
            workspace.Prepared = _prepared;
        }
        Pool = pool;
        _team = new ComputeTeam(_threads);
    }

    public void Dispose() => _team.Dispose();

    public Network Network => _network;
    public int SliceSize { get; }
    public int SliceCount { get; }
    public BufferPool Pool { get; }

    /// <summary>
    /// Slices [first, end) of a step. <paramref name="batch"/> holds the step's global batch of sample indices
    /// (slice s is batch[s·m .. (s+1)·m)). The caller owns the returned buffers (return them to <see cref="Pool"/>).
    /// </summary>
    public List<KeyValuePair<TreeNode, float[]>> Run(ModelWeights weights, Dataset train, ReadOnlyMemory<int> batch,
        ulong seed, long step, int first, int end)
    {
        var count = end - first;
        var threads = Math.Clamp(count, 1, _threads);
        if (_failed != 0)
        {
            // The last run threw part-way: start from clean reducers.
            foreach (var reducer in _threadReducers)
            {
                reducer.Reset();
            }
            _runReducer.Reset();
            _combine.Clear();
        }
        _finished = 0;
        _planned = 0;
        _failed = 0;
        for (var l = 0; l < _prepared.Length; l++)
        {
            if (_prepared[l] is { } prepared)
            {
                _network.Layers[l].Prepare(_network.LayerParameters(weights.Parameters, l), prepared);
            }
        }
        _team.Run(threads, t =>
        {
            var reducer = _threadReducers[t];
            var addends = _threadAddends[t];
            var from = first + t * count / threads;
            var to = first + (t + 1) * count / threads;
            try
            {
                for (var s = from; s < to; s++)
                {
                    // The slice's sums go straight into the tree: the pending sums it completes are added as it is written.
                    var node = reducer.PendingAddends(s, addends);
                    var buffer = reducer.Rent();
                    var indices = batch.Span.Slice(s * SliceSize, SliceSize);
                    SliceComputer.Compute(_network, weights, train, indices, seed, step, _workspaces[t], buffer,
                        System.Runtime.InteropServices.CollectionsMarshal.AsSpan(addends));
                    reducer.AddCombined(s, node, buffer);
                }
            }
            catch
            {
                // The others must not wait for this thread's sums at the barrier; the team rethrows.
                Volatile.Write(ref _failed, 1);
                Interlocked.Increment(ref _finished);
                throw;
            }
            CombineThreads(t, threads);
        });
        foreach (var (_, right) in _combine)
        {
            Pool.Return(right);
        }
        _combine.Clear();
        var result = _runReducer.TakePending();
        _runReducer.Reset();
        return result;
    }

    /// <summary>
    /// The threads' sums along the same tree, on all the threads: once every thread has its sums (a spinning barrier, so
    /// the worker's thread is not put to sleep and woken for a step's last tenth of a millisecond), thread 0 plans the
    /// additions and each thread does them on its share of the elements, in the same order, so the bits are the same.
    /// </summary>
    private void CombineThreads(int t, int threads)
    {
        Interlocked.Increment(ref _finished);
        var wait = new SpinWait();
        while (Volatile.Read(ref _finished) < threads)
        {
            wait.SpinOnce(sleep1Threshold: -1);
        }
        if (Volatile.Read(ref _failed) != 0)
        {
            return;
        }
        if (t == 0)
        {
            _runReducer.DeferAdditions(_combine);
            for (var k = 0; k < threads; k++)
            {
                foreach (var (node, sum) in _threadReducers[k].TakePending())
                {
                    _runReducer.Add(node, sum);
                }
                _threadReducers[k].Reset();
            }
            _runReducer.DeferAdditions(null);
            Volatile.Write(ref _planned, 1);
        }
        else
        {
            wait = new SpinWait();
            while (Volatile.Read(ref _planned) == 0)
            {
                wait.SpinOnce(sleep1Threshold: -1);
            }
        }
        // Shares aligned to 16 floats (a cache line), so two threads never write the same line.
        var length = Pool.Length;
        var from = (int)((long)length * t / threads) & ~15;
        var to = t == threads - 1 ? length : (int)((long)length * (t + 1) / threads) & ~15;
        foreach (var (left, right) in _combine)
        {
            Kernels.Elementwise.Add(left.AsSpan(from, to - from), right.AsSpan(from, to - from), left.AsSpan(from, to - from));
        }
    }
}
