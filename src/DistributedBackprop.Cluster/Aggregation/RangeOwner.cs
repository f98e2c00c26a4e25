using Akka.Actor;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Cluster.Trust;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Optim;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Aggregation;

/// <summary>
/// One per node (<c>/user/range-owner</c>): with sharded aggregation, the owner of one contiguous range of the result
/// vector. The coordinator gives it its range and that range's state (<see cref="OwnRange"/>); each step, workers send it
/// their subtree sums' range (<see cref="GradientPiece"/>), and once the coordinator names the subtrees that cover the
/// step (<see cref="ReduceRange"/>) it completes the canonical tree for its range, divides by the batch and reports its
/// blocks' sums of squares. With the coordinator's clipping factor (<see cref="ApplyRange"/>) it applies the optimizer
/// to its range — the optimizer state lives here, a 1/N share — and sends the new range to every node's cache
/// (<see cref="WeightsRange"/>). Every float operation is the one a single process does on that range, in the same
/// order, so the weights are the same bits.
/// </summary>
public sealed class RangeOwner : ReceiveActor
{
    /// <summary>Versions of its range an owner keeps for caches that missed one (as the coordinator keeps whole versions).</summary>
    private const int Keep = WeightsRetention.PublishedVersions;

    private readonly JobSpec _spec;
    private readonly Network _network;
    private readonly ParameterBlocks _blocks;
    private readonly Optimizer _optimizer;
    private readonly TensorTransport _transport;
    private readonly Akka.Cluster.Cluster _cluster;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly ChunkAssembler _assembler;
    private readonly Dictionary<(int Level, int Index, string Worker), float[]> _pieces = [];
    private readonly Dictionary<string, long> _bytes = [];
    private readonly Dictionary<long, WeightsRange> _published = [];

    private RangePlan? _plan;
    private int _range;
    private int _first;
    private int _end;
    private float[] _parameters = [];
    private float[] _state = [];
    private float[] _buffers = [];
    private long _version = -1;
    private ReduceRange? _reduce;
    private RangeReduced? _reduced;
    private IActorRef? _coordinator;
    private float[]? _gradient;

    public RangeOwner(JobSpec spec)
    {
        _spec = spec;
        _network = spec.Network;
        _blocks = new ParameterBlocks(_network);
        _optimizer = Optimizer.Create(spec.Options.Optimizer, spec.Options.Momentum);
        _transport = TensorTransport.For(Context.System);
        _assembler = new ChunkAssembler(TensorTransport.SerializerOf(Context.System), maxTransferBytes: spec.LargestMessageBytes);
        _cluster = Akka.Cluster.Cluster.Get(Context.System);

        // Pieces and state travel chunked over Akka when the data channel cannot take them (a peer not connected yet).
        Receive<TensorChunk>(chunk =>
        {
            if (Senders.Reassemble(_assembler, Sender, Context.System, _log, chunk) is { } complete)
            {
                Self.Forward(complete);
            }
        });
        Receive<OwnRange>(own =>
        {
            if (!FromCoordinator(own) || !IsWellFormed(own))
            {
                return;
            }
            if (IsCurrent(own.Plan.RunId, own.Plan.Generation) && own.Range == _range)
            {
                Publish(); // sent again because the step stalls: the plan is here, a range may not have reached a cache
                return;
            }
            Own(own);
        });
        Receive<GradientPiece>(piece =>
        {
            if (Senders.FromWorker(Sender, Context.System, _log, piece, piece.WorkerId))
            {
                Take(piece);
            }
        });
        Receive<ReduceRange>(reduce =>
        {
            if (FromCoordinator(reduce) && IsCurrent(reduce.RunId, reduce.Generation) && reduce.Step == _version
                && reduce.Levels.Length == reduce.Indices.Length && reduce.Workers.Length == reduce.Levels.Length
                && reduce.Workers.All(w => w is not null))
            {
                _coordinator = Sender;
                if (_gradient is not null && _reduced is { } done)
                {
                    // Reduced already (the coordinator missed the answer, or computed the step again): the same bits.
                    _transport.Send(Sender, done with { Peers = [], Bytes = [] }, Self);
                    return;
                }
                _reduce = reduce;
                ReduceWhenComplete();
            }
        });
        Receive<ApplyRange>(apply =>
        {
            if (!FromCoordinator(apply) || !IsCurrent(apply.RunId, apply.Generation) || apply.Buffers.Length != _network.BufferCount)
            {
                return;
            }
            if (apply.Step == _version && _gradient is not null)
            {
                Apply(apply);
            }
            else if (apply.Step == _version - 1)
            {
                Publish(); // applied already; sent again because the step stalls: a range may not have reached a cache
            }
        });
        Receive<SnapshotRange>(snapshot =>
        {
            if (FromCoordinator(snapshot) && IsCurrent(snapshot.RunId, snapshot.Generation) && snapshot.Version == _version)
            {
                _transport.Send(Sender, new RangeSnapshot(_plan!.RunId, _plan.Generation, _version, _range,
                    (float[])_parameters.Clone(), (float[])_state.Clone()), Self);
            }
        });
        Receive<PullWeights>(pull =>
        {
            if (Senders.FromMember(Sender, Context.System, _log, pull) && _published.TryGetValue(pull.Version, out var range))
            {
                Count(Sender, range.Parameters.Length + range.Buffers.Length);
                _transport.Send(Sender, range, Self);
            }
        });
    }

    private bool FromCoordinator(object message) => Senders.FromCoordinator(Sender, Context.System, _log, message);

    private bool IsCurrent(string runId, long generation) =>
        _plan is not null && runId == _plan.RunId && generation == _plan.Generation;

    /// <summary>A plan that cuts this run's result vector, and state of the range's sizes.</summary>
    private bool IsWellFormed(OwnRange own)
    {
        var plan = own.Plan;
        var ranges = plan.Owners.Length;
        var ok = plan.RunId == _spec.ConfigHash && ranges > 0 && plan.Firsts.Length == ranges && plan.Ends.Length == ranges
                 && plan.Owners.All(o => o is not null) && own.Range >= 0 && own.Range < ranges
                 && plan.Firsts[0] == 0 && plan.Ends[^1] == _network.ResultLength
                 && plan.Firsts.All(f => f < _network.ParameterCount && _blocks.IsBlockStart(f))
                 && Enumerable.Range(0, ranges).All(r => plan.Firsts[r] < plan.Ends[r] && (r == 0 || plan.Firsts[r] == plan.Ends[r - 1]))
                 && own.Buffers.Length == _network.BufferCount;
        if (ok)
        {
            var parameters = Math.Min(plan.Ends[own.Range], _network.ParameterCount) - plan.Firsts[own.Range];
            ok = own.Parameters.Length == parameters && own.OptimizerState.Length == _optimizer.StatePerParameter * parameters;
        }
        if (!ok)
        {
            Senders.Drop(_log, own, Sender, "a range plan or state that does not fit this run");
        }
        return ok;
    }

    private void Own(OwnRange own)
    {
        _pieces.Clear();
        _published.Clear();
        _reduce = null;
        _reduced = null;
        _gradient = null;
        _plan = own.Plan;
        _range = own.Range;
        _first = own.Plan.Firsts[own.Range];
        _end = own.Plan.Ends[own.Range];
        _parameters = own.Parameters;
        _state = own.OptimizerState;
        _buffers = own.Buffers;
        _version = own.Version;
        _log.Info("owns range {0} [{1}, {2}) of generation {3} from version {4}", _range, _first, _end, own.Plan.Generation,
            _version);
        Publish();
    }

    /// <summary>A worker's piece of the current step, for this range: kept until the coordinator names the pieces to use.</summary>
    private void Take(GradientPiece piece)
    {
        if (!IsCurrent(piece.RunId, piece.Generation) || piece.Step != _version || piece.Range != _range)
        {
            return; // stale: a step already reduced, or a plan replaced
        }
        if (piece.Values.Length != _end - _first || piece.Level < 0 || piece.Index < 0
            || piece.Level > GradientTree.RootLevel(_spec.Options.Slices) || ((long)piece.Index << piece.Level) >= _spec.Options.Slices)
        {
            Senders.Drop(_log, piece, Sender, $"a piece of {piece.Values.Length} values or subtree ({piece.Level}, {piece.Index}) for range {_range}");
            return;
        }
        // Bounded: a step has at most one piece per slice and worker copy; more means someone floods the owner.
        if (_pieces.Count >= 4 * _spec.Options.Slices)
        {
            Senders.Drop(_log, piece, Sender, $"more than {4 * _spec.Options.Slices} pieces held for one step");
            return;
        }
        Count(Sender, piece.Values.Length);
        _pieces[(piece.Level, piece.Index, piece.WorkerId)] = piece.Values;
        ReduceWhenComplete();
    }

    private void ReduceWhenComplete()
    {
        if (_reduce is not { } reduce || _gradient is not null)
        {
            return;
        }
        for (var i = 0; i < reduce.Levels.Length; i++)
        {
            if (!_pieces.ContainsKey((reduce.Levels[i], reduce.Indices[i], reduce.Workers[i])))
            {
                return; // still on its way (pieces and the coordinator's message travel apart)
            }
        }
        var length = _end - _first;
        var tree = new GradientTreeReducer(_spec.Options.Slices, new BufferPool(length, 2));
        for (var i = 0; i < reduce.Levels.Length; i++)
        {
            var key = (reduce.Levels[i], reduce.Indices[i], reduce.Workers[i]);
            // The tree adds into the pieces' arrays: each was made for this owner alone (a worker's copy, or deserialized).
            tree.Add(new TreeNode(key.Item1, key.Item2), _pieces[key]);
        }
        if (!tree.IsComplete)
        {
            Senders.Drop(_log, reduce, Sender, $"subtrees that do not cover the {_spec.Options.Slices} slices");
            _reduce = null;
            return;
        }
        _gradient = tree.Root;
        _pieces.Clear();
        var parameterEnd = Math.Min(_end, _network.ParameterCount);
        var squares = new double[_blocks.BlockAt(parameterEnd) - _blocks.BlockAt(_first)];
        _blocks.DivideAndSquare(_gradient.AsSpan(0, parameterEnd - _first), _first, parameterEnd, _spec.Options.Batch, squares);
        var tail = _end > _network.ParameterCount ? _gradient[(parameterEnd - _first)..] : [];
        var peers = _bytes.Keys.ToArray();
        var bytes = peers.Select(p => _bytes[p]).ToArray();
        _bytes.Clear();
        _reduced = new RangeReduced(_plan!.RunId, _plan.Generation, reduce.Step, _range, squares, tail, peers, bytes);
        _transport.Send(_coordinator!, _reduced, Self);
    }

    private void Apply(ApplyRange apply)
    {
        var parameters = _parameters.Length;
        if (!apply.Skip)
        {
            _optimizer.Step(_parameters, _gradient.AsSpan(0, parameters), apply.Scale, _state, apply.LearningRate,
                apply.AppliedUpdates, []);
        }
        _buffers = apply.Buffers;
        _gradient = null;
        _reduce = null;
        _reduced = null;
        _pieces.Clear(); // a step computed again may have sent some twice
        _version = apply.Step + 1;
        Publish();
    }

    /// <summary>The range of the current version to every member's cache (range 0 with the buffers).</summary>
    private void Publish()
    {
        var range = new WeightsRange(_plan!, _version, _range, (float[])_parameters.Clone(), _range == 0 ? _buffers : []);
        _published[_version] = range;
        _published.Remove(_version - Keep);
        foreach (var member in _cluster.State.Members.Where(m => m.Status == Akka.Cluster.MemberStatus.Up))
        {
            var cache = Resolve(member.Address, "weights-cache");
            Count(cache, range.Parameters.Length + range.Buffers.Length);
            _transport.Send(cache, range, Self);
        }
    }

    private IActorRef Resolve(Address node, string name) =>
        ((ExtendedActorSystem)Context.System).Provider.ResolveActorRef(new RootActorPath(node) / "user" / name);

    /// <summary>Tensor bytes to or from another node (a peer of this process costs nothing on the wire).</summary>
    private void Count(IActorRef peer, int floats)
    {
        if (!TensorTransport.IsLocal(peer) && peer.Path.Address != _cluster.SelfAddress)
        {
            var node = peer.Path.Address.ToString();
            _bytes[node] = _bytes.GetValueOrDefault(node) + 4L * floats;
        }
    }
}
