using Akka.Actor;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// The coordinator's side of sharded aggregation (<c>--aggregation sharded</c>): no tensor passes through it in a step.
/// It cuts the result vector into one range per node on block boundaries (<see cref="ParameterBlocks.Ranges"/>) and
/// hands each node's range owner its range and state; once a step's tree is covered it names the subtrees to the owners,
/// combines their blocks' sums of squares into the norms, lets <see cref="TrainingState.Decide"/> decide (health,
/// clipping, learning rate, buffers) and sends the decision back; the owners apply the optimizer and publish the new
/// ranges. Parameters and optimizer state come to the coordinator only for a checkpoint and at the end
/// (<see cref="RequestSnapshot"/>). A lost owner takes its range's optimizer state with it: the coordinator starts
/// again from the newest checkpoint (<see cref="OwnerLostException"/>).
/// </summary>
public sealed class ShardedAggregation(string runId, TrainingSetup setup, TensorTransport transport, ActorSystem system,
    IActorRef self)
{
    private readonly ParameterBlocks _blocks = new(setup.Network);
    private RangePlan? _plan;
    private IActorRef[] _owners = [];
    private RangeReduced?[] _reduced = [];
    private RangeSnapshot?[] _snapshots = [];
    private long _snapshotVersion = -1;
    private OwnRange?[] _owned = [];
    private ReduceRange? _lastReduce;
    private ApplyRange? _lastApply;

    /// <summary>Where the bytes owners moved are counted.</summary>
    public StepTimings? Timings { get; set; }

    /// <summary>The nodes that own a range now.</summary>
    public IReadOnlyList<string> OwnerNodes => _plan?.Owners ?? [];

    public RangePlan? Plan => _plan;

    /// <summary>
    /// Cuts the ranges over <paramref name="nodes"/> (sorted, so the plan is the same whoever computes it) and gives each
    /// owner its range's state from <paramref name="state"/> at its current step: the owners then publish that version.
    /// </summary>
    public void Start(TrainingState state, IEnumerable<Address> nodes)
    {
        var network = setup.Network;
        var owners = nodes.Select(n => n.ToString()).Order(StringComparer.Ordinal).ToArray();
        var ranges = _blocks.Ranges(owners.Length, network.ResultLength);
        owners = owners[..ranges.Count];
        // Ticks: a plan of a later coordinator incarnation has a larger generation than any before it.
        _plan = new RangePlan(runId, DateTime.UtcNow.Ticks, owners, ranges.Select(r => r.First).ToArray(),
            ranges.Select(r => r.End).ToArray());
        var provider = ((ExtendedActorSystem)system).Provider;
        _owners = owners.Select(o => provider.ResolveActorRef(ActorPath.Parse(o) / "user" / "range-owner")).ToArray();
        _reduced = new RangeReduced?[owners.Length];
        _owned = new OwnRange?[owners.Length];
        _snapshots = new RangeSnapshot?[owners.Length];
        var p = network.ParameterCount;
        var perParameter = state.Optimizer.StatePerParameter;
        for (var r = 0; r < owners.Length; r++)
        {
            var (first, end) = (ranges[r].First, Math.Min(ranges[r].End, p));
            var optimizerState = new float[perParameter * (end - first)];
            for (var k = 0; k < perParameter; k++)
            {
                state.OptimizerState.AsSpan(k * p + first, end - first).CopyTo(optimizerState.AsSpan(k * (end - first)));
            }
            var own = new OwnRange(_plan, r, state.Step, state.Weights.Parameters[first..end], optimizerState,
                (float[])state.Weights.Buffers.Clone(), state.AppliedUpdates);
            Count(_owners[r], 4L * (end - first) * (1 + perParameter));
            transport.Send(_owners[r], own, self);
            _owned[r] = own;
        }
        _lastApply = null;
    }

    /// <summary>
    /// A step makes no progress: the owners are told again what they were last told — their ranges (an owner that has
    /// its plan ignores it) or the last decision (an owner that applied it already ignores it) — and each sends its
    /// current range to every cache again. A message lost to a partition or a restart would otherwise stall the job:
    /// a version no cache can assemble, a decision never applied.
    /// </summary>
    public void NudgeOwners()
    {
        for (var r = 0; r < _owners.Length; r++)
        {
            if (_lastApply is not null)
            {
                _owners[r].Tell(_lastApply, self);
            }
            else if (_owned[r] is { } own)
            {
                transport.Send(_owners[r], own, self);
            }
        }
    }

    /// <summary>A cache's pull, passed to every owner as from the cache (each answers with its range, if it still has it).</summary>
    public void ForwardPull(PullWeights pull, IActorRef cache)
    {
        foreach (var owner in _owners)
        {
            owner.Tell(pull, cache);
        }
    }

    /// <summary>
    /// True when <paramref name="nodes"/> has a node that owns no range of the current plan (one that joined): the ranges
    /// are cut again over every node at the next step boundary, so the new node takes its share of the bytes and of the
    /// optimizer state. (A node that is gone is an owner lost, handled apart.)
    /// </summary>
    public bool HasNodeWithoutRange(IEnumerable<Address> nodes)
    {
        if (_plan is null)
        {
            return false;
        }
        var newcomers = nodes.Count(n => !_plan.Owners.Contains(n.ToString(), StringComparer.Ordinal));
        // More nodes than blocks: the extra nodes own nothing in any plan.
        return newcomers > 0
               && _blocks.Ranges(_plan.Owners.Length + newcomers, setup.Network.ResultLength).Count > _plan.Owners.Length;
    }

    /// <summary>
    /// True when a node in <paramref name="leaving"/> owns a range: the ranges are cut again without it at the next step
    /// boundary, while it still answers, so its optimizer state moves instead of being lost with it.
    /// </summary>
    public bool HasOwnerIn(IReadOnlySet<Address> leaving) =>
        _plan is not null && leaving.Any(n => _plan.Owners.Contains(n.ToString(), StringComparer.Ordinal));

    /// <summary>True when <paramref name="node"/> owns a range of the current plan.</summary>
    public bool Owns(Address node) => _plan is not null && _plan.Owners.Contains(node.ToString());

    /// <summary>A step's tree is covered: each owner completes its range's tree from these subtrees' pieces.</summary>
    public void Reduce(long step, IReadOnlyList<(TreeNode Node, string Worker)> subtrees)
    {
        Array.Clear(_reduced);
        var reduce = new ReduceRange(runId, _plan!.Generation, step, subtrees.Select(s => s.Node.Level).ToArray(),
            subtrees.Select(s => s.Node.Index).ToArray(), subtrees.Select(s => s.Worker).ToArray());
        _lastReduce = reduce;
        foreach (var owner in _owners)
        {
            owner.Tell(reduce, self);
        }
    }

    /// <summary>Asks the owners that have not answered the step's reduction again (a message may have been lost).</summary>
    public void NudgeReduce()
    {
        for (var r = 0; r < _owners.Length; r++)
        {
            if (_reduced[r] is null && _lastReduce is not null)
            {
                _owners[r].Tell(_lastReduce, self);
            }
        }
    }

    /// <summary>
    /// An owner's squares for step <paramref name="step"/>, from the owner of that range (its node checked here) and of
    /// the range's shape; true when every range is in.
    /// </summary>
    public bool Reduced(RangeReduced reduced, Address from, long step)
    {
        if (_plan is null || reduced.RunId != runId || reduced.Generation != _plan.Generation || reduced.Step != step
            || reduced.Range < 0 || reduced.Range >= _owners.Length || _plan.Owners[reduced.Range] != from.ToString()
            || _reduced[reduced.Range] is not null || !HasShape(reduced))
        {
            return false;
        }
        _reduced[reduced.Range] = reduced;
        for (var i = 0; i < reduced.Peers.Length; i++)
        {
            if (reduced.Peers[i] is { } peer && reduced.Bytes[i] >= 0)
            {
                Timings?.Moved(from.ToString(), peer, reduced.Bytes[i]);
            }
        }
        return _reduced.All(r => r is not null);
    }

    private bool HasShape(RangeReduced reduced)
    {
        var p = setup.Network.ParameterCount;
        var (first, end) = (_plan!.Firsts[reduced.Range], _plan.Ends[reduced.Range]);
        var blocks = _blocks.BlockAt(Math.Min(end, p)) - _blocks.BlockAt(first);
        return reduced.BlockSquares.Length == blocks && reduced.Tail.Length == Math.Max(0, end - p)
               && reduced.Peers.Length == reduced.Bytes.Length;
    }

    /// <summary>
    /// Every range is in: the norms from the blocks in block order, the decision made on <paramref name="state"/> (which
    /// advances a step), and sent to the owners, who apply it and publish the next version.
    /// </summary>
    public StepDecision Decide(TrainingState state)
    {
        var squares = new double[_blocks.Count];
        for (var r = 0; r < _reduced.Length; r++)
        {
            _reduced[r]!.BlockSquares.CopyTo(squares, _blocks.BlockAt(_plan!.Firsts[r]));
        }
        var step = state.Step;
        var decision = state.Decide(squares, _reduced[^1]!.Tail, setup.Options.Batch, setup.Options.Slices);
        var apply = new ApplyRange(runId, _plan!.Generation, step, decision.Report.Skipped, decision.Scale,
            decision.LearningRate, decision.AppliedUpdates, (float[])state.Weights.Buffers.Clone());
        foreach (var owner in _owners)
        {
            owner.Tell(apply, self);
        }
        _lastApply = apply;
        return decision;
    }

    /// <summary>Asks every owner for its range's parameters and optimizer state at <paramref name="version"/>.</summary>
    public void RequestSnapshot(long version)
    {
        _snapshotVersion = version;
        Array.Clear(_snapshots);
        foreach (var owner in _owners)
        {
            owner.Tell(new SnapshotRange(runId, _plan!.Generation, version), self);
        }
    }

    /// <summary>The owners that have not sent their state are asked again (after the last decision, in case it was lost too).</summary>
    public void NudgeSnapshot()
    {
        for (var r = 0; r < _owners.Length; r++)
        {
            if (_snapshots[r] is null && _snapshotVersion >= 0)
            {
                if (_lastApply is not null)
                {
                    _owners[r].Tell(_lastApply, self);
                }
                _owners[r].Tell(new SnapshotRange(runId, _plan!.Generation, _snapshotVersion), self);
            }
        }
    }

    /// <summary>
    /// An owner's snapshot; when every range is in, they are written into <paramref name="state"/> (whose parameters and
    /// optimizer state are then those of the snapshot's version) and true is said.
    /// </summary>
    public bool Snapshot(RangeSnapshot snapshot, Address from, TrainingState state)
    {
        var p = setup.Network.ParameterCount;
        var perParameter = state.Optimizer.StatePerParameter;
        if (_plan is null || snapshot.RunId != runId || snapshot.Generation != _plan.Generation
            || snapshot.Version != _snapshotVersion || snapshot.Range < 0 || snapshot.Range >= _owners.Length
            || _plan.Owners[snapshot.Range] != from.ToString() || _snapshots[snapshot.Range] is not null)
        {
            return false;
        }
        var (first, end) = (_plan.Firsts[snapshot.Range], Math.Min(_plan.Ends[snapshot.Range], p));
        if (snapshot.Parameters.Length != end - first || snapshot.OptimizerState.Length != perParameter * (end - first))
        {
            return false;
        }
        _snapshots[snapshot.Range] = snapshot;
        Count(_owners[snapshot.Range], 4L * (snapshot.Parameters.Length + snapshot.OptimizerState.Length));
        if (!_snapshots.All(s => s is not null))
        {
            return false;
        }
        for (var r = 0; r < _snapshots.Length; r++)
        {
            var (f, e) = (_plan.Firsts[r], Math.Min(_plan.Ends[r], p));
            _snapshots[r]!.Parameters.CopyTo(state.Weights.Parameters, f);
            for (var k = 0; k < perParameter; k++)
            {
                _snapshots[r]!.OptimizerState.AsSpan(k * (e - f), e - f).CopyTo(state.OptimizerState.AsSpan(k * p + f));
            }
        }
        Array.Clear(_snapshots);
        _snapshotVersion = -1;
        return true;
    }

    private void Count(IActorRef owner, long bytes)
    {
        if (!TensorTransport.IsLocal(owner))
        {
            Timings?.Moved(((ExtendedActorSystem)system).Provider.DefaultAddress.ToString(), owner.Path.Address.ToString(), bytes);
        }
    }
}

/// <summary>
/// A range owner's node left the cluster: its range's optimizer state is gone, so the coordinator starts again (the
/// singleton restarts it) from the newest checkpoint and replays — the same bits, some steps later.
/// </summary>
public sealed class OwnerLostException(string node) : Exception($"the owner of a range on {node} was lost; starting again from the newest checkpoint");
