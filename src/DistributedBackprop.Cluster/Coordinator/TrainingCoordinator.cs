using System.Diagnostics;
using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using DistributedBackprop.Cluster.Telemetry;
using DistributedBackprop.Cluster.Wire;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// The cluster singleton that owns the weights. It waits for enough members, merges the workers' feature statistics
/// in chunk order, then runs the step protocol of DESIGN.md: assign each worker a contiguous run of slices by step id,
/// complete the canonical tree from the subtree sums they return, apply the step (health veto, clipping, optimizer) with
/// the same <see cref="TrainingState"/> as the single-process trainer, and broadcast the new weights once per node.
/// Results for another run, step or version, and duplicates, are dropped.
/// </summary>
public sealed class TrainingCoordinator : ReceiveActor, IWithTimers
{
    public static readonly TimeSpan StepDeadline = TimeSpan.FromSeconds(120);

    private readonly NodeContext _context;
    private readonly IActorRef _workers;
    private readonly TensorTransport _transport;
    private readonly ChunkAssembler _assembler;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly string _runId;
    private readonly string[] _workerIds;
    private readonly Dictionary<Address, IActorRef> _caches = [];
    private readonly HashSet<Address> _members = [];
    private readonly SortedDictionary<string, string> _placement = new(StringComparer.Ordinal);
    // The current phase's work orders, so the orders of a worker whose node left can be sent again (sharding re-homes
    // the entity on a live node; the duplicate results that may follow are dropped).
    private readonly List<(string Worker, IWireMessage Order)> _inFlight = [];

    private TrainingSetup? _setup;
    private TrainingState? _state;
    private GradientTreeReducer? _reducer;
    private WeightsVersion? _current;

    // Per-step bookkeeping for the summary: wall, compute (slowest worker), coordinator work, bytes over the network.
    private readonly Stopwatch _stepClock = new();
    private double _stepCompute;
    private double _trainSeconds, _computeSeconds, _coordinatorSeconds;
    private long _bytesSent, _stepsRun;
    private double _lastLoss = double.NaN;
    private Evaluation _test = new(double.NaN, double.NaN, 0);

    public TrainingCoordinator(NodeContext context, IActorRef workers)
    {
        _context = context;
        _workers = workers;
        _transport = TensorTransport.For(Context.System);
        _assembler = new ChunkAssembler(TensorTransport.SerializerOf(Context.System));
        _runId = context.ConfigHash;
        _workerIds = Enumerable.Range(0, context.Options.Workers).Select(Hosting.WorkerMessageExtractor.WorkerId).ToArray();
        Become(WaitingForMembers);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Deadline(long Step, string Phase);

    protected override void PreStart()
    {
        if (_context.Finished.Task.IsCompleted)
        {
            // A singleton that moves here while the cluster is shutting down after the job must not start it again.
            Become(() => ReceiveAny(_ => { }));
            return;
        }
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.MemberUp), typeof(ClusterEvent.MemberRemoved));
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    // ---- always ----

    private void Common()
    {
        Receive<ClusterEvent.MemberUp>(up =>
        {
            _members.Add(up.Member.Address);
            Context.ActorSelection(new RootActorPath(up.Member.Address) / "user" / "weights-cache")
                .Tell(new Identify(up.Member.Address));
        });
        Receive<ClusterEvent.MemberRemoved>(removed =>
        {
            _members.Remove(removed.Member.Address);
            _caches.Remove(removed.Member.Address);
            ResendWorkOf(removed.Member.Address);
            PublishWorkersAlive();
        });
        Receive<ActorIdentity>(identity =>
        {
            if (identity.MessageId is Address address && identity.Subject is { } cache && _members.Contains(address))
            {
                _caches[address] = cache;
                // A node that comes up mid-run gets the normaliser and the current weights at once.
                if (_setup is not null)
                {
                    _transport.Send(cache, NormaliserMessage(), Self);
                }
                if (_current is not null)
                {
                    SendWeights(cache, _current);
                }
                OnMembersChanged();
            }
        });
        Receive<RegisterNode>(node =>
        {
            var accepted = node.ConfigHash == _context.ConfigHash;
            if (!accepted)
            {
                _log.Warning("refused node {0}: configuration hash {1} differs from the coordinator's {2}",
                    node.Address, node.ConfigHash, _context.ConfigHash);
            }
            Sender.Tell(new NodeVerdict(accepted, _runId, accepted ? "" :
                $"this node was started with training options (hash {node.ConfigHash}) that differ from the coordinator's (hash {_context.ConfigHash}); start every node with the same options"));
        });
        Receive<TensorChunk>(chunk =>
        {
            if (_assembler.TryAccept(Sender, chunk, out var complete) && complete is not null)
            {
                Self.Forward(complete);
            }
        });
        Receive<PullWeights>(pull =>
        {
            if (_current is not null && pull.RunId == _runId && pull.Version == _current.Version)
            {
                SendWeights(Sender, _current);
            }
        });
        // A re-sent order can reach a worker after its step is done; its failure (weights version gone) is stale.
        Receive<WorkFailed>(failed => _state is not null && failed.Step >= 0 && failed.Step < _state.Step, failed =>
            _log.Debug("dropped a stale failure of {0} for step {1}", failed.WorkerId, failed.Step));
        Receive<WorkFailed>(failed => FaultDetected($"worker {failed.WorkerId} failed at step {failed.Step}: {failed.Reason}"));
        Receive<Deadline>(deadline => FaultDetected(
            $"no complete result for {deadline.Phase} {deadline.Step} within {StepDeadline.TotalSeconds:F0} s; the workers are gone or stuck"));
    }

    private Action? _onMembersChanged;

    private void OnMembersChanged() => _onMembersChanged?.Invoke();

    // ---- phase 1: wait until min-nodes members are up and their caches known ----

    private void WaitingForMembers()
    {
        Common();
        _onMembersChanged = () =>
        {
            if (_caches.Count >= _context.Outputs.MinNodes)
            {
                _workers.Tell(Akka.Cluster.Sharding.GetCurrentRegions.Instance, Self);
            }
        };
        // Start only when every node's shard region is known, so the workers spread over all the nodes.
        Receive<Akka.Cluster.Sharding.CurrentRegions>(regions =>
        {
            if (regions.Regions.Count >= _context.Outputs.MinNodes)
            {
                StartWorkers();
            }
            else
            {
                Timers.StartSingleTimer("regions", Akka.Cluster.Sharding.GetCurrentRegions.Instance, TimeSpan.FromMilliseconds(200));
            }
        });
        Receive<Akka.Cluster.Sharding.GetCurrentRegions>(ask => _workers.Tell(ask, Self));
        ReceiveAny(message => _log.Debug("coordinator waiting for members ignores {0}", message.GetType().Name));
    }

    // ---- phase 2: start the worker entities one at a time ----

    /// <summary>
    /// Shard allocations made concurrently all see the same (empty) allocation table and land on one node; started one
    /// after the other, the least-shards strategy spreads the workers over the nodes.
    /// </summary>
    private void StartWorkers()
    {
        _onMembersChanged = null;
        var next = 0;
        _workers.Tell(new StartWorker(_workerIds[next], _runId), Self);
        Timers.StartSingleTimer("deadline", new Deadline(0, "starting the workers"), StepDeadline);
        Become(() =>
        {
            Common();
            Receive<WorkerStarted>(started =>
            {
                if (started.RunId != _runId || started.WorkerId != _workerIds[next])
                {
                    return;
                }
                _placement[started.WorkerId] = started.NodeAddress;
                if (++next < _workerIds.Length)
                {
                    _workers.Tell(new StartWorker(_workerIds[next], _runId), Self);
                }
                else
                {
                    PublishWorkersAlive();
                    StartStatistics();
                }
            });
            ReceiveAny(_ => { });
        });
    }

    // ---- phase 3: distributed feature statistics, merged in chunk order ----

    private void StartStatistics()
    {
        _log.Info("starting run {0} with {1} members and {2} workers", _runId, _members.Count, _workerIds.Length);
        var train = _context.RawData.Train;
        var chunkRows = FeatureStatistics.DefaultChunkRows;
        var chunks = (train.Count + chunkRows - 1) / chunkRows;
        var partials = new FeatureStatistics?[chunks];
        var received = 0;
        _inFlight.Clear();
        foreach (var (worker, first, count) in Assign(chunks))
        {
            SendWork(worker, new ComputeStatistics(worker, _runId, first, count, chunkRows));
        }
        Timers.StartSingleTimer("deadline", new Deadline(0, "feature statistics"), StepDeadline);
        Become(() =>
        {
            Common();
            Receive<StatisticsResult>(result =>
            {
                if (result.RunId != _runId || result.Chunk < 0 || result.Chunk >= chunks || partials[result.Chunk] is not null)
                {
                    return;
                }
                partials[result.Chunk] = new FeatureStatistics(result.Count, result.Mean, result.M2);
                if (++received < chunks)
                {
                    return;
                }
                var merged = FeatureStatistics.MergeInOrder(train.FeatureCount, partials!);
                _setup = _context.UseNormaliser(FeatureNormaliser.FromStatistics(merged));
                _state = _setup.NewState();
                _reducer = new GradientTreeReducer(_setup.Options.Slices, _context.Pool);
                foreach (var cache in _caches.Values)
                {
                    _transport.Send(cache, NormaliserMessage(), Self);
                }
                PublishWeights();
                StartStep();
            });
            ReceiveAny(_ => { });
        });
    }

    // ---- phase 4: steps ----

    private void StartStep()
    {
        var setup = _setup!;
        var state = _state!;
        if (state.Step >= setup.TotalSteps)
        {
            Finish();
            return;
        }
        var step = state.Step;
        _stepClock.Restart();
        _stepCompute = 0;
        _inFlight.Clear();
        foreach (var (worker, first, count) in Assign(setup.Options.Slices))
        {
            SendWork(worker, new ComputeSlices(worker, _runId, step, _current!.Version, first, count));
        }
        Timers.StartSingleTimer("deadline", new Deadline(step, "step"), StepDeadline);
        Become(() =>
        {
            Common();
            Receive<SliceResult>(OnSliceResult);
            ReceiveAny(_ => { });
        });
    }

    private void OnSliceResult(SliceResult result)
    {
        var state = _state!;
        if (result.RunId != _runId || result.Step != state.Step || result.Version != _current!.Version)
        {
            _log.Debug("dropped a stale result for step {0} from {1}", result.Step, result.WorkerId);
            return;
        }
        var node = new TreeNode(result.Level, result.Index);
        if (result.Sum.Length != _setup!.Network.ResultLength || result.Level < 0 || result.Index < 0
            || node.First >= _setup.Options.Slices || !_reducer!.Add(node, result.Sum))
        {
            _log.Debug("dropped a duplicate or malformed result for step {0} from {1}", result.Step, result.WorkerId);
            return;
        }
        _placement[result.WorkerId] = NodeOf(Sender);
        if (!IsLocal(Sender))
        {
            _bytesSent += 4L * result.Sum.Length;
            TrainingMetrics.BytesSent.Add(4L * result.Sum.Length);
        }
        _stepCompute = Math.Max(_stepCompute, result.ComputeSeconds);
        if (_reducer.IsComplete)
        {
            ApplyStep();
        }
    }

    private void ApplyStep()
    {
        var setup = _setup!;
        var state = _state!;
        var applyClock = Stopwatch.StartNew();
        var report = state.Apply(_reducer!.Root, setup.Options.Batch, setup.Options.Slices);
        _reducer.Reset();
        PublishWeights();
        var apply = applyClock.Elapsed.TotalSeconds;
        var wall = _stepClock.Elapsed.TotalSeconds;
        _trainSeconds += wall;
        _computeSeconds += _stepCompute;
        _coordinatorSeconds += apply;
        _stepsRun++;
        _lastLoss = report.Loss;
        TrainingMetrics.RecordStep(wall, _stepsRun * setup.Options.Batch / _trainSeconds, report.Loss, report.GradientNorm,
            report.Clipped);

        var observer = _context.Observer;
        if (report.Warning is not null)
        {
            observer?.OnWarning(report.Warning);
        }
        var (epoch, stepInEpoch) = setup.Plan.Locate(report.Step);
        observer?.OnStep(report, epoch, stepInEpoch, setup.Plan.StepsPerEpoch,
            _stepsRun * setup.Options.Batch / _trainSeconds);
        var endOfEpoch = stepInEpoch == setup.Plan.StepsPerEpoch - 1;
        if (setup.Options.CheckpointDir is { } dir
            && (setup.Options.CheckpointEvery > 0 ? state.Step % setup.Options.CheckpointEvery == 0 : endOfEpoch))
        {
            new CheckpointStore(dir).Save(setup, state);
        }
        if (endOfEpoch)
        {
            foreach (var warning in state.Health.EndEpoch(epoch))
            {
                observer?.OnWarning(warning);
            }
            StartEvaluation(epoch, report.Loss);
        }
        else
        {
            StartStep();
        }
    }

    // ---- phase 5: distributed evaluation of the held-out split ----

    private void StartEvaluation(int epoch, double trainLoss)
    {
        var test = _setup!.Data.Test;
        var chunks = Evaluator.ChunkCount(test.Count);
        var lossSums = new double[chunks];
        var correct = new int[chunks];
        var done = new bool[chunks];
        var received = 0;
        var version = _current!.Version;
        _inFlight.Clear();
        foreach (var (worker, first, count) in Assign(chunks))
        {
            SendWork(worker, new EvaluateChunks(worker, _runId, version, first, count));
        }
        Timers.StartSingleTimer("deadline", new Deadline(_state!.Step, "evaluation after step"), StepDeadline);
        Become(() =>
        {
            Common();
            Receive<EvaluationResult>(result =>
            {
                if (result.RunId != _runId || result.Version != version || result.Chunk < 0 || result.Chunk >= chunks
                    || done[result.Chunk])
                {
                    return;
                }
                done[result.Chunk] = true;
                lossSums[result.Chunk] = result.LossSum;
                correct[result.Chunk] = result.Correct;
                if (++received < chunks)
                {
                    return;
                }
                _test = Evaluator.Combine(lossSums, correct, test.Count);
                _context.Observer?.OnEpoch(epoch, trainLoss, _test);
                StartStep();
            });
            ReceiveAny(_ => { });
        });
    }

    // ---- the end ----

    private void Finish()
    {
        Timers.Cancel("deadline");
        _inFlight.Clear();
        var setup = _setup!;
        var state = _state!;
        var result = new TrainingResult(state.Step, _stepsRun, _trainSeconds,
            _stepsRun * setup.Options.Batch / Math.Max(_trainSeconds, 1e-9), _lastLoss, _test, state.Weights.Sha256(),
            state.Health.Report());
        var steps = Math.Max(1, _stepsRun);
        var extra = new JsonObject
        {
            ["bytes_per_step"] = _bytesSent / (double)steps,
            ["placement"] = new JsonObject(_placement.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
            ["step_seconds"] = new JsonObject
            {
                ["total"] = _trainSeconds / steps,
                ["compute"] = _computeSeconds / steps,
                ["coordinator"] = _coordinatorSeconds / steps,
                ["communication"] = Math.Max(0, _trainSeconds - _computeSeconds - _coordinatorSeconds) / steps,
            },
        };
        var summary = TrainingSummary.Build(setup, result, _workerIds.Length, _members.Count, extra);
        try
        {
            if (_context.Outputs.ModelPath is { } modelPath)
            {
                ModelFile.Write(modelPath, CheckpointStore.Snapshot(setup, state, "model"));
            }
            if (_context.Outputs.SummaryPath is { } summaryPath)
            {
                AtomicText.Write(summaryPath, TrainingSummary.ToJson(summary));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Fail($"could not write the outputs: {e.Message}");
            return;
        }
        _context.Finished.TrySetResult(new JobOutcome(0, "done", summary, result));
        Broadcast(new JobFinished(_runId, 0, "training finished"));
        Become(() =>
        {
            Common();
            ReceiveAny(_ => { });
        });
    }

    /// <summary>A worker failure or a missed deadline: counted, then (until re-assignment lands) the job fails.</summary>
    private void FaultDetected(string message)
    {
        TrainingMetrics.FaultsHandled.Add(1);
        Fail(message);
    }

    private void SendWork(string worker, IWireMessage order)
    {
        _inFlight.Add((worker, order));
        _workers.Tell(order, Self);
    }

    /// <summary>
    /// A node left (a deleted pod, a graceful leave, a downed node): its shards are re-homed by sharding, so the current
    /// phase's orders for the workers it hosted are sent again and reach them on their new node.
    /// </summary>
    private void ResendWorkOf(Address node)
    {
        var gone = node.ToString();
        var orders = _inFlight.Where(o => _placement.TryGetValue(o.Worker, out var at) && at == gone).ToList();
        if (orders.Count == 0)
        {
            return;
        }
        TrainingMetrics.FaultsHandled.Add(1);
        _log.Warning("node {0} left with {1} work orders in flight; sending them again", gone, orders.Count);
        foreach (var (worker, order) in orders)
        {
            _placement.Remove(worker);
            _workers.Tell(order, Self);
        }
    }

    private string NodeOf(IActorRef actor) =>
        actor.Path.Address.HasGlobalScope ? actor.Path.Address.ToString() : _cluster.SelfAddress.ToString();

    /// <summary>Workers whose node is still a member, for the workers-alive gauge.</summary>
    private void PublishWorkersAlive() =>
        TrainingMetrics.SetWorkersAlive(_placement.Values.Count(node => _members.Any(m => m.ToString() == node)));

    private void Fail(string message)
    {
        _log.Error("training failed: {0}", message);
        Timers.Cancel("deadline");
        _inFlight.Clear();
        _context.Finished.TrySetResult(new JobOutcome(1, message, null));
        Broadcast(new JobFinished(_runId, 1, message));
        Become(() => ReceiveAny(_ => { }));
    }

    // ---- helpers ----

    /// <summary>Cuts n work items into contiguous runs, one per worker (workers beyond n get none).</summary>
    private IEnumerable<(string Worker, int First, int Count)> Assign(int n)
    {
        var w = _workerIds.Length;
        for (var k = 0; k < w; k++)
        {
            var first = k * n / w;
            var end = (k + 1) * n / w;
            if (end > first)
            {
                yield return (_workerIds[k], first, end - first);
            }
        }
    }

    private NormaliserReady NormaliserMessage() =>
        new(_runId, _setup!.Normaliser.Mean, _setup.Normaliser.Std);

    /// <summary>A read-only copy of the weights as version Step, sent once to every node's cache.</summary>
    private void PublishWeights()
    {
        var weights = _state!.Weights;
        _current = new WeightsVersion(_runId, _state.Step, (float[])weights.Parameters.Clone(),
            (float[])weights.Buffers.Clone());
        foreach (var cache in _caches.Values)
        {
            SendWeights(cache, _current);
        }
    }

    private void SendWeights(IActorRef cache, WeightsVersion weights)
    {
        if (!IsLocal(cache))
        {
            _bytesSent += 4L * (weights.Parameters.Length + weights.Buffers.Length);
            TrainingMetrics.BytesSent.Add(4L * (weights.Parameters.Length + weights.Buffers.Length));
        }
        _transport.Send(cache, weights, Self);
    }

    private static bool IsLocal(IActorRef actor) => TensorTransport.IsLocal(actor);

    private void Broadcast(JobFinished message)
    {
        foreach (var member in _members)
        {
            Context.ActorSelection(new RootActorPath(member) / "user" / "node-agent").Tell(message, Self);
        }
    }
}
