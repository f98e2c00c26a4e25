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
    private readonly Dictionary<long, List<IActorRef>> _waiting = [];
    private readonly ChunkAssembler _assembler;
    private IActorRef? _coordinator;
    private string? _runId;
    private TrainingSetup? _setup;

    public WeightsCache(JobSpec spec)
    {
        _spec = spec;
        _assembler = new ChunkAssembler(TensorTransport.SerializerOf(Context.System),
            maxTransferBytes: spec.LargestMessageBytes);
        // Weights, the normaliser and their chunks are believed only from this process or the coordinator (Senders).
        Receive<TensorChunk>(chunk =>
        {
            if (FromCoordinator(chunk) && Senders.Reassemble(_assembler, Sender, Context.System, _log, chunk) is { } complete)
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
        Receive<GetWeights>(OnGet);
        Receive<PullIfStillMissing>(missing =>
        {
            if (_waiting.ContainsKey(missing.Version) && !_versions.ContainsKey(missing.Version))
            {
                Pull(missing.RunId, missing.Version);
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
        _runId = message.RunId;
        if (_versions.Count > 0 && message.Version < _versions.Keys.Last())
        {
            // A coordinator only ever publishes newer versions; an older one comes from a new incarnation that resumed
            // from a checkpoint behind the old one. Without this the eviction below would drop the very version the new
            // incarnation's workers ask for ("gone"), for ever. The newer versions belong to the dead incarnation's
            // timeline (the replay recomputes them): drop them, and release whoever waits for one of them.
            foreach (var newer in _versions.Keys.Where(v => v > message.Version).ToList())
            {
                _versions.Remove(newer);
            }
            foreach (var version in _waiting.Keys.Where(v => v > message.Version).ToList())
            {
                Reply(_waiting[version], new WeightsGone(version));
                _waiting.Remove(version);
            }
            _log.Info("weights version {0} is older than this cache's; a new coordinator incarnation resumed", message.Version);
        }
        _versions[message.Version] = new ModelWeights(message.Parameters, message.Buffers);
        while (_versions.Count > Keep)
        {
            _versions.Remove(_versions.Keys.First());
        }
        ServeWaiting();
    }

    /// <summary>Answers whoever waits for a version that is here now (once the setup is too), or that is gone.</summary>
    private void ServeWaiting()
    {
        if (_versions.Count == 0)
        {
            return;
        }
        foreach (var version in _waiting.Keys.ToList())
        {
            if (_versions.TryGetValue(version, out var weights))
            {
                if (_setup is not null)
                {
                    Reply(_waiting[version], new WeightsAvailable(version, weights, _setup));
                    _waiting.Remove(version);
                }
            }
            else if (version < _versions.Keys.First())
            {
                Reply(_waiting[version], new WeightsGone(version));
                _waiting.Remove(version);
            }
        }
    }

    private static bool SameNormaliser(FeatureNormaliser normaliser, NormaliserReady ready) =>
        normaliser.Mean.AsSpan().SequenceEqual(ready.Mean) && normaliser.Std.AsSpan().SequenceEqual(ready.Std);

    private void OnGet(GetWeights request)
    {
        if (_versions.TryGetValue(request.Version, out var weights))
        {
            if (_setup is not null)
            {
                Sender.Tell(new WeightsAvailable(request.Version, weights, _setup));
            }
            else
            {
                // The weights are here but the normaliser is not yet (they travel apart): wait for it.
                Waiting(request.Version).Add(Sender);
            }
            return;
        }
        if (_versions.Count > 0 && request.Version < _versions.Keys.First())
        {
            Sender.Tell(new WeightsGone(request.Version));
            return;
        }
        if (!_waiting.ContainsKey(request.Version))
        {
            if (_coordinator is not null && _versions.Count > 0 && request.Version < _versions.Keys.Last())
            {
                // Newer versions exist but this one is missing: it was lost, ask again rather than wait forever.
                Pull(request.RunId, request.Version);
            }
            else
            {
                // Most likely still on its way (a large version arrives in chunks): pull only if it does not come.
                Timers.StartSingleTimer(("pull", request.Version), new PullIfStillMissing(request.RunId, request.Version), PullAfter);
            }
        }
        Waiting(request.Version).Add(Sender);
    }

    private List<IActorRef> Waiting(long version) =>
        _waiting.TryGetValue(version, out var list) ? list : _waiting[version] = [];

    public ITimerScheduler Timers { get; set; } = null!;

    private static readonly TimeSpan PullAfter = TimeSpan.FromSeconds(1);

    private sealed record PullIfStillMissing(string RunId, long Version);

    private void Pull(string runId, long version)
    {
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
