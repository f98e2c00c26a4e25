using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// The step being collected: the canonical tree of the subtree sums received so far (<see cref="GradientTreeReducer"/>),
/// which worker's sum each slice came from and whose slices got a speculative copy (for the step's line in the run
/// folder). A result is taken only if its shape fits this run; which results to take is the coordinator's decision.
/// </summary>
public sealed class StepCollection(TrainingSetup setup, BufferPool pool)
{
    private readonly int _slices = setup.Options.Slices;
    private readonly int _resultLength = setup.Network.ResultLength;
    private readonly string?[] _sliceWorkers = new string?[setup.Options.Slices];
    private readonly List<string> _stragglers = [];

    public GradientTreeReducer Tree { get; } = new(setup.Options.Slices, pool);

    /// <summary>Per slice, the worker whose sum was used.</summary>
    public IReadOnlyList<string?> SliceWorkers => _sliceWorkers;

    /// <summary>Workers whose slices got a speculative copy in this step.</summary>
    public IReadOnlyList<string> Stragglers => _stragglers;

    public void Begin()
    {
        Array.Clear(_sliceWorkers);
        _stragglers.Clear();
    }

    /// <summary>
    /// A result of this run's shape: a sum of the result length for a subtree of the slice tree. Checked in 64-bit: a
    /// node (2, 2^30) read as slices 0..3 once its first slice wrapped.
    /// </summary>
    public bool IsWellFormed(SliceResult result) =>
        result.Sum.Length == _resultLength && result.Level >= 0 && result.Index >= 0
        && result.Level <= GradientTree.RootLevel(_slices) && ((long)result.Index << result.Level) < _slices;

    /// <summary>Adds the sum of <paramref name="node"/> computed by <paramref name="worker"/>; true when the tree is complete.</summary>
    public bool Add(TreeNode node, string worker, float[] sum)
    {
        Tree.Add(node, sum);
        Array.Fill(_sliceWorkers, worker, node.First, node.End(_slices) - node.First);
        return Tree.IsComplete;
    }

    public void Straggler(string worker)
    {
        if (!_stragglers.Contains(worker))
        {
            _stragglers.Add(worker);
        }
    }
}
