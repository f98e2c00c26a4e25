using Akka.Actor;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Cluster.Trust;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Workers;

/// <summary>
/// One per node: receives each weights version once from the coordinator and serves it to every worker entity on the
/// node, so a broadcast costs one transfer per node, not one per entity. It also owns the node's setup: from the
/// coordinator's normaliser it normalises the node's data once, and hands the setup out with the weights (and to a
/// coordinator in this process). An entity asking for a version that has not arrived, or before the normaliser, waits;
/// if the version never arrived (a node that joined late, a lost message) the cache pulls it.
/// </summary>
public sealed class WeightsCache : ReceiveActor, IWithTimers
{
    private const int Keep = WeightsRetention.CachedVersions;
    private readonly JobSpec _spec;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly SortedDictionary<long, ModelWeights> _versions = [];
    private readonly Dictionary<long, Waiters> _waiting = [];
    private readonly ChunkAssembler _assembler;
    private readonly Dictionary<long, RangePlan> _plans = [];
    private readonly Dictionary<long, RangeAssembly> _assembling = [];
    private readonly int _parameterCount;
    private readonly int _bufferCount;
    private readonly int _resultLength;
    private RangePlan? _lastPlan;
    private IActorRef? _coordinator;
    private string? _runId;
    private TrainingSetup? _setup;

    public WeightsCache(JobSpec spec)
    {
        _spec = spec;
        var network = spec.Network;
        (_parameterCount, _bufferCount, _resultLength) = (network.ParameterCount, network.BufferCount, network.ResultLength);
        _assembler = new ChunkAssembler(TensorTransport.SerializerOf(Context.System),
            maxTransferBytes: spec.LargestMessageBytes);
        // Weights, the normaliser and their chunks are believed only from this process, the coordinator or (ranges of
        // weights, with sharded aggregation) a range owner (Senders).
        Receive<TensorChunk>(chunk =>
        {
            if ((Sender.Path.Name == "range-owner" || FromCoordinator(chunk))
                && Senders.Reassemble(_assembler, Sender, Context.System, _log, chunk) is { } complete)
            {
                Self.Forward(complete);
            }
        });
        Receive<NormaliserReady>(ready =>
        {
            if (!FromCoordinator(ready))
            {
                return;
            }
            var features = _spec.RawData.Train.FeatureCount;
            if (ready.Mean.Length != features || ready.Std.Length != features)
            {
                Senders.Drop(_log, ready, Sender, $"a normaliser of {ready.Mean.Length} means and {ready.Std.Length} deviations for {features} features");
                return;
            }
            _coordinator = Sender;
            _runId = ready.RunId;
            // The statistics are merged in chunk order, so a new coordinator incarnation sends the same normaliser
            // again: the setup is built once (normalising the data is the expensive part).
            if (_setup is null || !SameNormaliser(_setup.Normaliser, ready))
            {
                _setup = TrainingSetup.Create(_spec.Options, _spec.RawData, new FeatureNormaliser(ready.Mean, ready.Std));
            }
            if (TensorTransport.IsLocal(Sender))
            {
                Sender.Tell(new SetupReady(_setup));
            }
            ServeWaiting();
        });
        Receive<WeightsVersion>(OnWeights);
        Receive<WeightsRange>(range =>
        {
            if (Senders.FromOwner(Sender, Context.System, _log, range))
            {
                OnRange(range);
            }
        });
        Receive<GetWeights>(OnGet);
        Receive<PullIfStillMissing>(missing =>
        {
            if (_waiting.TryGetValue(missing.Version, out var waiters) && !Has(missing.Version, waiters.Generation))
            {
                Pull(missing.RunId, missing.Version, waiters.Generation);
                if (missing.Attempt < PullAttempts)
                {
                    // Owners that did not have it yet (a plan still on its way to them) are asked again.
                    Timers.StartSingleTimer(("pull", missing.Version), missing with { Attempt = missing.Attempt + 1 }, PullAfter);
                }
            }
        });
    }

    private bool FromCoordinator(object message) => Senders.FromCoordinator(Sender, Context.System, _log, message);

    private void OnWeights(WeightsVersion message)
    {
        if (!FromCoordinator(message))
        {
            return;
        }
        if (!Sender.IsNobody())
        {
            _coordinator = Sender;
        }
        Store(message.RunId, message.Version, new ModelWeights(message.Parameters, message.Buffers), plan: null);
    }

    private void Store(string runId, long version, ModelWeights weights, RangePlan? plan)
    {
        _runId = runId;
        if (_versions.Count > 0 && version < _versions.Keys.Last())
        {
            // A coordinator only ever publishes newer versions; an older one comes from a new incarnation that resumed
            // from a checkpoint behind the old one. Without this the eviction below would drop the very version the new
            // incarnation's workers ask for ("gone"), for ever. The newer versions belong to the dead incarnation's
            // timeline (the replay recomputes them): drop them, and release whoever waits for one of them.
            foreach (var newer in _versions.Keys.Where(v => v > version).ToList())
            {
                _versions.Remove(newer);
                _plans.Remove(newer);
            }
            foreach (var waiting in _waiting.Keys.Where(v => v > version).ToList())
            {
                Reply(_waiting[waiting].Requesters, new WeightsGone(waiting));
                _waiting.Remove(waiting);
            }
            _log.Info("weights version {0} is older than this cache's; a new coordinator incarnation resumed", version);
        }
        _versions[version] = weights;
        if (plan is null)
        {
            _plans.Remove(version);
        }
        else
        {
            _plans[version] = plan;
        }
        while (_versions.Count > Keep)
        {
            _plans.Remove(_versions.Keys.First());
            _versions.Remove(_versions.Keys.First());
        }
        ServeWaiting();
    }

    /// <summary>
    /// A range of a version from its owner (sharded aggregation): copied into the version being assembled; the version is
    /// served once every range of its plan is in. A plan of a newer generation (a coordinator that started again)
    /// replaces an older one's ranges and versions.
    /// </summary>
    private void OnRange(WeightsRange range)
    {
        var plan = range.Plan;
        if (!FitsThisRun(range))
        {
            Senders.Drop(_log, range, Sender, "a range or plan that does not fit this run");
            return;
        }
        if (_plans.TryGetValue(range.Version, out var have) && have.Generation >= plan.Generation)
        {
            return; // already assembled (a pulled range that came twice)
        }
        if (_lastPlan is { } newest && plan.Generation < newest.Generation)
        {
            // A range of a coordinator incarnation that is gone, still on its way: its versions belong to a timeline the
            // new one replays. Assembled, they would push the new incarnation's versions out of this cache.
            return;
        }
        if (!_assembling.TryGetValue(range.Version, out var assembly) || assembly.Plan.Generation < plan.Generation)
        {
            assembly = new RangeAssembly(plan, new float[_parameterCount], new float[_bufferCount], new bool[plan.Owners.Length]);
            _assembling[range.Version] = assembly;
            while (_assembling.Count > Keep)
            {
                _assembling.Remove(_assembling.Keys.Min());
            }
        }
        else if (assembly.Plan.Generation > plan.Generation || assembly.Got[range.Range])
        {
            return;
        }
        range.Parameters.CopyTo(assembly.Parameters, plan.Firsts[range.Range]);
        if (range.Range == 0)
        {
            range.Buffers.CopyTo(assembly.Buffers, 0);
        }
        assembly.Got[range.Range] = true;
        if (assembly.Got.All(g => g))
        {
            _assembling.Remove(range.Version);
            if (_lastPlan is null || _lastPlan.Generation < plan.Generation)
            {
                _lastPlan = plan;
                foreach (var stale in _assembling.Where(a => a.Value.Plan.Generation < plan.Generation).Select(a => a.Key).ToList())
                {
                    _assembling.Remove(stale);
                }
            }
            Store(plan.RunId, range.Version, new ModelWeights(assembly.Parameters, assembly.Buffers), plan);
        }
    }

    /// <summary>A plan that cuts this run's result vector into contiguous ranges, and a range of its size.</summary>
    private bool FitsThisRun(WeightsRange range)
    {
        var plan = range.Plan;
        var count = plan.Owners.Length;
        if (plan.RunId != _spec.ConfigHash || count == 0 || plan.Firsts.Length != count || plan.Ends.Length != count
            || plan.Owners.Any(o => o is null) || range.Range < 0 || range.Range >= count || range.Version < 0
            || plan.Firsts[0] != 0 || plan.Ends[^1] != _resultLength)
        {
            return false;
        }
        for (var r = 0; r < count; r++)
        {
            if (plan.Firsts[r] >= plan.Ends[r] || (r > 0 && plan.Firsts[r] != plan.Ends[r - 1]) || plan.Firsts[r] >= _parameterCount)
            {
                return false;
            }
        }
        var parameters = Math.Min(plan.Ends[range.Range], _parameterCount) - plan.Firsts[range.Range];
        return range.Parameters.Length == parameters && range.Buffers.Length == (range.Range == 0 ? _bufferCount : 0);
    }

    private sealed record RangeAssembly(RangePlan Plan, float[] Parameters, float[] Buffers, bool[] Got);

    /// <summary>Answers whoever waits for a version that is here now (once the setup is too), or that is gone.</summary>
    private void ServeWaiting()
    {
        if (_versions.Count == 0)
        {
            return;
        }
        foreach (var (version, waiters) in _waiting.ToList())
        {
            if (Has(version, waiters.Generation))
            {
                if (_setup is not null)
                {
                    Reply(waiters.Requesters, new WeightsAvailable(version, _versions[version], _setup, _plans.GetValueOrDefault(version)));
                    _waiting.Remove(version);
                }
            }
            else if (IsGone(version, waiters.Generation))
            {
                Reply(waiters.Requesters, new WeightsGone(version));
                _waiting.Remove(version);
            }
        }
    }

    private static bool SameNormaliser(FeatureNormaliser normaliser, NormaliserReady ready) =>
        normaliser.Mean.AsSpan().SequenceEqual(ready.Mean) && normaliser.Std.AsSpan().SequenceEqual(ready.Std);

    private void OnGet(GetWeights request)
    {
        var (version, generation) = (request.Version, request.Generation);
        if (Has(version, generation))
        {
            if (_setup is not null)
            {
                Sender.Tell(new WeightsAvailable(version, _versions[version], _setup, _plans.GetValueOrDefault(version)));
            }
            else
            {
                // The weights are here but the normaliser is not yet (they travel apart): wait for it.
                Wait(version, generation, Sender);
            }
            return;
        }
        if (IsGone(version, generation))
        {
            Sender.Tell(new WeightsGone(version));
            return;
        }
        if (!_waiting.ContainsKey(version))
        {
            if ((_coordinator is not null || _lastPlan is not null) && _versions.Count > 0 && version < _versions.Keys.Last()
                && generation <= CurrentGeneration)
            {
                // Newer versions exist but this one is missing: it was lost, ask again rather than wait forever.
                Pull(request.RunId, version, generation);
            }
            // Most likely still on its way (a large version arrives in chunks, a new plan's ranges are being published):
            // pulled only if it does not come.
            Timers.StartSingleTimer(("pull", version), new PullIfStillMissing(request.RunId, version, 1), PullAfter);
        }
        Wait(version, generation, Sender);
    }

    /// <summary>The range plan generation of the weights this cache serves (0 before any plan: coordinator aggregation).</summary>
    private long CurrentGeneration => _lastPlan?.Generation ?? 0;

    /// <summary>
    /// Version <paramref name="version"/> is here, of plan <paramref name="generation"/> or newer. (A version of an older
    /// plan has the same bits, the replay being exact, but its plan sends the step's pieces to owners that are gone.)
    /// </summary>
    private bool Has(long version, long generation) =>
        _versions.ContainsKey(version) && generation <= (_plans.TryGetValue(version, out var plan) ? plan.Generation : 0);

    /// <summary>
    /// Older than anything held, and not of a newer plan than this cache has seen: a newer plan's versions restart from
    /// its checkpoint, below the versions held here, and are on their way, not gone (saying gone made every worker give
    /// its job back at once, over and over, until the new plan's ranges arrived).
    /// </summary>
    private bool IsGone(long version, long generation) =>
        _versions.Count > 0 && version < _versions.Keys.First() && generation <= CurrentGeneration;

    /// <summary>Who waits for a version, and the newest plan generation any of them asked for it in.</summary>
    private sealed class Waiters
    {
        public List<IActorRef> Requesters { get; } = [];

        public long Generation { get; set; }
    }

    private void Wait(long version, long generation, IActorRef requester)
    {
        if (!_waiting.TryGetValue(version, out var waiters))
        {
            _waiting[version] = waiters = new Waiters();
        }
        waiters.Generation = Math.Max(waiters.Generation, generation);
        waiters.Requesters.Add(requester);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private static readonly TimeSpan PullAfter = TimeSpan.FromSeconds(1);

    /// <summary>Pulls a missing version at most this many times, one <see cref="PullAfter"/> apart (a worker gives up sooner).</summary>
    private const int PullAttempts = 10;

    private sealed record PullIfStillMissing(string RunId, long Version, int Attempt);

    private void Pull(string runId, long version, long generation)
    {
        if (_lastPlan is { } plan && generation <= plan.Generation && _versions.Count > 0 && _plans.ContainsKey(_versions.Keys.Last()))
        {
            // Sharded: the ranges come from their owners (each keeps its last versions).
            _log.Info("weights version {0} missing on this node; pulling its ranges from their owners", version);
            foreach (var owner in plan.Owners.Distinct())
            {
                if (ActorPath.TryParse($"{owner}/user/range-owner", out var path))
                {
                    ((ExtendedActorSystem)Context.System).Provider.ResolveActorRef(path).Tell(new PullWeights(_runId ?? runId, version));
                }
            }
            return;
        }
        _log.Info("weights version {0} missing on this node; pulling it from the coordinator", version);
        _coordinator?.Tell(new PullWeights(_runId ?? runId, version));
    }

    private static void Reply(List<IActorRef> requesters, object message)
    {
        foreach (var requester in requesters)
        {
            requester.Tell(message);
        }
    }
}
