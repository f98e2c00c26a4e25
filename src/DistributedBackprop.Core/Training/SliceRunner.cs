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
        Pool = pool;
        _team = new ComputeTeam(_threads);
    }

    public void Dispose() => _team.Dispose();

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
        _team.Run(threads, t =>
        {
            var reducer = _threadReducers[t];
            var addends = _threadAddends[t];
            var from = first + t * count / threads;
            var to = first + (t + 1) * count / threads;
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
        });
        for (var t = 0; t < threads; t++)
        {
            foreach (var (node, sum) in _threadReducers[t].TakePending())
            {
                _runReducer.Add(node, sum);
            }
            _threadReducers[t].Reset();
        }
        var result = _runReducer.TakePending();
        _runReducer.Reset();
        return result;
    }
}
