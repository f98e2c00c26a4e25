using Akka.Event;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Core.Kernels;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// One step of the protocol, without the actor: the plan that hands the slices to live workers, the results taken into
/// the canonical tree (<see cref="GradientTreeReducer"/>) until it is complete, and what faults change — a lost
/// worker's slices re-assigned, stragglers' slices copied, a non-finite sum recomputed elsewhere (a worker wrong twice
/// is excluded), stale results and duplicates dropped but cross-checked bit for bit. It returns the work to send; the
/// coordinator sends it. Also keeps, for the step's line in the run folder, which worker's sum each slice came from
/// and whose slices got a speculative copy.
/// </summary>
public sealed class StepRound(string runId, TrainingSetup setup, WorkAssignment work, ResultVerifier verifier,
    FaultLog faults, BufferPool pool, ILoggingAdapter log)
{
    private readonly int _slices = setup.Options.Slices;
    private readonly int _resultLength = setup.Network.ResultLength;
    private readonly int _parameterCount = setup.Network.ParameterCount;
    private readonly string?[] _sliceWorkers = new string?[setup.Options.Slices];
    private readonly List<string> _stragglers = [];
    private readonly List<(TreeNode Node, string Worker)> _shipped = [];
    private readonly bool[] _shippedCovered = new bool[setup.Options.Slices];
    private long _version;

    /// <summary>What became of one result.</summary>
    /// <param name="Taken">Its sum went into the tree.</param>
    /// <param name="Complete">…and completed it: the step can be applied.</param>
    /// <param name="Recompute">Work to send because the result was non-finite.</param>
    /// <param name="ExcludedAfter">When its worker was excluded for repeated corrupt results: after how many.</param>
    public sealed record Intake(bool Taken, bool Complete, IReadOnlyList<Assignment> Recompute, int? ExcludedAfter)
    {
        public static readonly Intake Dropped = new(false, false, [], null);
        public static readonly Intake Added = new(true, false, [], null);
        public static readonly Intake Completed = new(true, true, [], null);
    }

    /// <summary>The step being collected.</summary>
    public long Step { get; private set; }

    public GradientTreeReducer Tree { get; } = new(setup.Options.Slices, pool);

    /// <summary>How many of the step's slices the tree holds so far.</summary>
    public int CoveredSlices { get; private set; }

    /// <summary>
    /// With sharded aggregation, the subtrees taken (each named by its worker): their sums are with the range owners, and
    /// this is the list the owners complete the tree from.
    /// </summary>
    public IReadOnlyList<(TreeNode Node, string Worker)> Shipped => _shipped;

    /// <summary>True when every slice of the step is covered (by sums here, or by shipped results).</summary>
    public bool IsComplete => Tree.IsComplete || CoveredSlices == _slices && _shipped.Count > 0;

    private bool IsCovered(int slice) => Tree.IsCovered(slice) || _shippedCovered[slice];

    private bool Overlaps(TreeNode node)
    {
        for (var s = node.First; s < node.End(_slices); s++)
        {
            if (IsCovered(s))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Forgets the step's results (the tree's buffers go back to the pool).</summary>
    public void Reset()
    {
        Tree.Reset();
        _shipped.Clear();
        Array.Clear(_shippedCovered);
    }

    /// <summary>Per slice, the worker whose sum was used.</summary>
    public IReadOnlyList<string?> SliceWorkers => _sliceWorkers;

    /// <summary>Workers whose slices got a speculative copy in this step.</summary>
    public IReadOnlyList<string> Stragglers => _stragglers;

    /// <summary>
    /// Starts step <paramref name="step"/> on weights version <paramref name="version"/>: the plan to send. A worker that
    /// did not answer its last step is left out of it for a while, and recorded as a fault.
    /// </summary>
    public IReadOnlyList<Assignment> Begin(long step, long version, DateTime now, Func<string, string?> placementOf)
    {
        Step = step;
        _version = version;
        Array.Clear(_sliceWorkers);
        CoveredSlices = 0;
        _shipped.Clear();
        Array.Clear(_shippedCovered);
        _stragglers.Clear();
        verifier.Expire(now);
        var silentBefore = work.Silent.ToHashSet();
        var plan = work.BeginStep(now);
        foreach (var worker in work.Silent.Where(w => !silentBefore.Contains(w)))
        {
            faults.Add("worker-silent", step, $"{worker}@{placementOf(worker) ?? "?"}",
                $"no answer to its last step in time; left out of the next steps for {WorkAssignment.SilenceGrace.TotalSeconds:F0} s",
                worker, placementOf(worker));
        }
        return plan;
    }

    /// <summary>A worker was lost: the uncovered parts of its runs, for live workers.</summary>
    public IReadOnlyList<Assignment> WorkerLost(string worker) => work.Reassign(worker, IsCovered);

    /// <summary>The step is slow: its stragglers' slices get speculative copies (or, with nothing out, it starts again).</summary>
    public IReadOnlyList<Assignment> Speculate(DateTime now)
    {
        if (work.Current.Count == 0)
        {
            return work.BeginStep(now);
        }
        var copies = work.Speculate(IsCovered);
        foreach (var copy in copies)
        {
            var owner = work.Current.FirstOrDefault(a => !a.Copy && a.First <= copy.First && copy.First < a.End);
            faults.Add("straggler", Step, owner?.Worker ?? "?",
                $"slices {copy.First}..{copy.End - 1} copied to {copy.Worker}; the first result wins", owner?.Worker);
            if (owner is not null && !_stragglers.Contains(owner.Worker))
            {
                _stragglers.Add(owner.Worker);
            }
        }
        return copies;
    }

    /// <summary>A result from its worker (the coordinator checked the sender): taken, dropped, or sent to be recomputed.</summary>
    public Intake Take(SliceResult result, DateTime now)
    {
        if (result.RunId == runId)
        {
            work.Answered(result.WorkerId);
        }
        if (result.RunId != runId || !IsWellFormed(result))
        {
            log.Debug("dropped a malformed result for step {0} from {1}", result.Step, result.WorkerId);
            return Intake.Dropped;
        }
        var node = new TreeNode(result.Level, result.Index);
        if (result.Step != Step || result.Version != _version || Overlaps(node))
        {
            // Stale (a straggler's, after its copy won) or a duplicate: dropped, but compared where possible.
            CrossCheck(node, result);
            pool.Return(result.Sum);
            return Intake.Dropped;
        }
        var first = node.First;
        var end = node.End(_slices);
        var finite = result.Shipped ? result.Finite : double.IsFinite(Elementwise.SumOfSquares(result.Sum.AsSpan(0, _parameterCount)));
        if (!finite && !work.WasRecomputed(first, end))
        {
            return NonFinite(result.WorkerId, first, end);
        }
        if (work.Current.Any(a => a.Copy && a.First < end && first < a.End))
        {
            // A speculative copy of these slices is out: keep a fingerprint so the two results can be compared.
            verifier.Remember(result.Step, node, result.WorkerId, FingerprintOf(result), now);
        }
        if (result.Shipped)
        {
            _shipped.Add((node, result.WorkerId));
            Array.Fill(_shippedCovered, true, first, end - first);
        }
        else
        {
            Tree.Add(node, result.Sum);
        }
        CoveredSlices += end - first;
        Array.Fill(_sliceWorkers, result.WorkerId, first, end - first);
        return IsComplete ? Intake.Completed : Intake.Added;
    }

    /// <summary>
    /// A result of this run's shape: a sum of the result length for a subtree of the slice tree. Checked in 64-bit: a
    /// node (2, 2^30) read as slices 0..3 once its first slice wrapped.
    /// </summary>
    public bool IsWellFormed(SliceResult result) =>
        (result.Shipped ? result.Fingerprint.Length == ResultVerifier.FingerprintBytes : result.Sum.Length == _resultLength)
        && result.Level >= 0 && result.Index >= 0
        && result.Level <= GradientTree.RootLevel(_slices) && ((long)result.Index << result.Level) < _slices;

    /// <summary>
    /// A duplicate (a speculative copy, or a re-assigned run) is dropped, but where it covers exactly a subtree already
    /// received, the two must be bit-identical: a difference means one of the two workers computes wrongly.
    /// </summary>
    public void CrossCheck(TreeNode node, SliceResult duplicate)
    {
        var comparison = verifier.Compare(duplicate.Step, node, duplicate.WorkerId, FingerprintOf(duplicate), out var first);
        if (comparison == ResultVerifier.Comparison.Nothing)
        {
            log.Debug("dropped a duplicate result for step {0} from {1}", duplicate.Step, duplicate.WorkerId);
        }
        else if (comparison == ResultVerifier.Comparison.Different)
        {
            var end = node.End(_slices) - 1;
            log.Error("{0} and {1} disagree on slices {2}..{3} of step {4}", first, duplicate.WorkerId, node.First, end,
                duplicate.Step);
            faults.Add("duplicate-mismatch", duplicate.Step, $"{first} vs {duplicate.WorkerId}",
                $"the two results for slices {node.First}..{end} differ: one worker is corrupt; the first result was used",
                duplicate.WorkerId);
        }
    }

    /// <summary>The SHA-256 of a result's sum: computed here, or by the worker that shipped the sum to the owners.</summary>
    private static byte[] FingerprintOf(SliceResult result) =>
        result.Shipped ? result.Fingerprint : ResultVerifier.Fingerprint(result.Sum);

    /// <summary>
    /// A NaN/Inf sum is recomputed on another worker once; if that one agrees, it is the data's, and the health monitor
    /// deals with it; if not, the first worker was wrong, and a worker wrong twice is excluded.
    /// </summary>
    private Intake NonFinite(string worker, int first, int end)
    {
        var strikes = verifier.Strike(worker);
        var handling = $"dropped; slices {first}..{end - 1} recomputed elsewhere";
        var excluded = strikes >= 2;
        if (excluded)
        {
            work.Exclude(worker, "returned non-finite gradients repeatedly");
            handling += $"; {worker} excluded after {strikes} corrupt results";
        }
        faults.Add("non-finite-result", Step, worker, handling, worker);
        return new Intake(false, false, work.Recompute(first, end, worker), excluded ? strikes : null);
    }
}
