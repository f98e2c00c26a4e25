using System.Diagnostics;
using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Telemetry;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Cluster.Trust;
using DistributedBackprop.Core;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Kernels;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// The cluster singleton that owns the weights. It waits for enough members, starts the workers, merges their feature
/// statistics in chunk order, then runs the step protocol of docs/ARCHITECTURE.md: give each live worker a contiguous run of slices
/// by step id, complete the canonical tree from the subtree sums they return, apply the step (health veto, clipping,
/// optimizer) with the same <see cref="TrainingState"/> as the single-process trainer, and broadcast the new weights
/// once per node. Faults never change the result, only who computes what: a lost worker's slices go to live workers at
/// once, a straggler's get a speculative copy, a NaN result is recomputed elsewhere, a new incarnation resumes from the
/// newest valid checkpoint. Results for another run, step or version, and duplicates, are dropped.
/// </summary>
public sealed class TrainingCoordinator : ReceiveActor, IWithTimers
{
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
    private readonly HashSet<Address> _unreachable = [];
    // Nodes whose configuration hash matched ours; only they count towards --min-nodes.
    private readonly HashSet<string> _accepted = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, string> _placement = new(StringComparer.Ordinal);
    private readonly WorkAssignment _work;
    private readonly FaultLog _faults = new();
    private readonly List<double> _recentSteps = [];
    // Fingerprints of this step's results whose slices also went out as speculative copies.
    private readonly ResultVerifier _verifier = new(FingerprintKeep);
    // A straggler's result may arrive many steps late (the others go on without it while it is silent): its copy's
    // fingerprint is kept this long so the late result can still be cross-checked. By time, not steps: a step of a small
    // model takes well under a millisecond, so 1,000 steps had gone by before a 1.5 s straggler answered.
    private static readonly TimeSpan FingerprintKeep = TimeSpan.FromSeconds(30);
    // The run folder, and what this step's line reports: who computed each slice, whose slices got a speculative copy.
    private RunRecorder _run = RunRecorder.None;
    private readonly string?[] _stepSlices;
    private readonly List<string> _stepStragglers = [];

    private TrainingSetup? _setup;
    private RunSchedule? _schedule;
    private TrainingState? _state;
    private GradientTreeReducer? _reducer;
    private WeightsVersion? _current;
    private long? _resumedFrom;
    private readonly (float[] Parameters, float[] Buffers)?[] _ring = new (float[], float[])?[WeightsRetention.PublishedVersions];
    private bool _resuming;
    private int _phase;
    private DateTime _lastProgress = DateTime.UtcNow;
    private Action? _onMembersChanged;
    private Action<string>? _onWorkerLost;
    private int _waitingPhase;
    private Action? _nudge;
    private Func<string>? _waitingFor;

    // Per-step bookkeeping for the summary: wall, compute (slowest worker), coordinator work, bytes over the network.
    private readonly Stopwatch _stepClock = new();
    private double _stepCompute;
    private int _faultsAtStepStart;
    private double _trainSeconds, _computeSeconds, _coordinatorSeconds;
    private long _bytesSent, _stepsRun;
    private double _lastLoss = double.NaN;
    private Evaluation _test = new(double.NaN, double.NaN, 0);

    public TrainingCoordinator(NodeContext context, IActorRef workers)
    {
        _context = context;
        _workers = workers;
        _transport = TensorTransport.For(Context.System);
        _assembler = new ChunkAssembler(TensorTransport.SerializerOf(Context.System),
            maxTransferBytes: context.LargestMessageBytes);
        _runId = context.ConfigHash;
        _workerIds = Enumerable.Range(0, context.Options.Workers).Select(Hosting.WorkerMessageExtractor.WorkerId).ToArray();
        _work = new WorkAssignment(context.Options.Slices, _workerIds);
        _stepSlices = new string?[context.Options.Slices];
        Become(WaitingForMembers);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Fires while a phase waits: speculate on stragglers, re-send what is missing, give up after the bounded wait.</summary>
    private sealed record Tick(int Phase);

    protected override void PreStart()
    {
        if (_context.Finished.Task.IsCompleted)
        {
            // A singleton that moves here while the cluster is shutting down after the job must not start it again.
            Become(() => ReceiveAny(_ => { }));
            return;
        }
        try
        {
            _run = RunRecorder.Open(_context);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var message = $"--run-dir: cannot write the run folder '{_context.Outputs.RunDir}' ({e.Message}); give a writable folder.";
            _log.Error(message);
            _context.Finished.TrySetResult(new JobOutcome(2, message));
            Become(() => ReceiveAny(_ => { }));
            return;
        }
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.MemberUp), typeof(ClusterEvent.MemberRemoved), typeof(ClusterEvent.UnreachableMember),
            typeof(ClusterEvent.ReachableMember));
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        _run.Dispose();
    }

    // ---- always ----

    private void Common()
    {
        Receive<Tick>(OnTick);
        // A straggler's result that arrives between steps (evaluation, the end) still shows that its worker is alive,
        // and is still compared with the copy that won.
        Receive<SliceResult>(late =>
        {
            if (!FromWorker(late, late.WorkerId))
            {
                return;
            }
            if (late.RunId == _runId)
            {
                _work.Answered(late.WorkerId);
                CrossCheck(new TreeNode(late.Level, late.Index), late);
            }
            _context.Pool.Return(late.Sum);
        });
        Receive<ClusterEvent.MemberUp>(up =>
        {
            _members.Add(up.Member.Address);
            _run.MemberUp(up.Member, _state?.Step ?? 0);
            ClusterChanged();
            Context.ActorSelection(new RootActorPath(up.Member.Address) / "user" / "weights-cache")
                .Tell(new Identify(up.Member.Address));
        });
        Receive<ClusterEvent.UnreachableMember>(e =>
        {
            _run.Reachability(e.Member.Address, reachable: false, _state?.Step ?? 0);
            NodeLost(e.Member.Address, "node-unreachable");
            ClusterChanged();
        });
        Receive<ClusterEvent.ReachableMember>(e =>
        {
            _unreachable.Remove(e.Member.Address);
            foreach (var worker in WorkersOn(e.Member.Address))
            {
                _work.MarkAlive(worker);
            }
            _run.Reachability(e.Member.Address, reachable: true, _state?.Step ?? 0);
            ClusterChanged();
        });
        Receive<ClusterEvent.MemberRemoved>(removed =>
        {
            NodeLost(removed.Member.Address, "node-removed");
            _members.Remove(removed.Member.Address);
            _caches.Remove(removed.Member.Address);
            _unreachable.Remove(removed.Member.Address);
            _accepted.Remove(removed.Member.Address.ToString());
            // Sharding re-homes the lost node's workers; the first message starts them on a live node.
            foreach (var worker in _workerIds.Where(_work.IsDead))
            {
                _workers.Tell(new StartWorker(worker, _runId), Self);
            }
            _run.MemberRemoved(removed.Member.Address, _state?.Step ?? 0);
            ClusterChanged();
        });
        Receive<WorkerStarted>(started =>
        {
            if (started.RunId != _runId || !FromWorker(started, started.WorkerId))
            {
                return;
            }
            // Where the worker runs is where its answer came from, not what the message says.
            var node = Senders.NodeOf(Sender, Context.System);
            _placement[started.WorkerId] = node.ToString();
            if (_members.Contains(node) && !_unreachable.Contains(node))
            {
                _work.MarkAlive(started.WorkerId);
            }
            ClusterChanged();
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
                _onMembersChanged?.Invoke();
            }
        });
        Receive<RegisterNode>(node =>
        {
            // The node is the one the registration came from (its agent), and must be a member.
            if (!FromMember(node))
            {
                return;
            }
            var address = Senders.NodeOf(Sender, Context.System);
            var accepted = node.ConfigHash == _context.ConfigHash;
            if (!accepted)
            {
                _log.Warning("refused node {0}: its configuration hash {1} differs from the coordinator's {2}",
                    address, node.ConfigHash, _context.ConfigHash);
            }
            // A refused node learns nothing of this run (neither its id nor its options' hash).
            Sender.Tell(new NodeVerdict(accepted, accepted ? _runId : "", accepted ? "" :
                $"this node was started with training options (hash {node.ConfigHash}) that differ from the coordinator's; start every node with the same options"));
            if (accepted && _accepted.Add(address.ToString()))
            {
                _onMembersChanged?.Invoke();
            }
        });
        Receive<TensorChunk>(chunk =>
        {
            if (Senders.Reassemble(_assembler, Sender, Context.System, _log, chunk) is { } complete)
            {
                Self.Forward(complete);
            }
        });
        Receive<PullWeights>(pull =>
        {
            if (!FromMember(pull))
            {
                return;
            }
            if (_current is not null && pull.RunId == _runId && pull.Version == _current.Version)
            {
                SendWeights(Sender, _current);
            }
        });
        Receive<WorkFailed>(failed =>
        {
            if (failed.RunId != _runId || !FromWorker(failed, failed.WorkerId))
            {
                return;
            }
            _log.Warning("worker {0} could not do its work at step {1}: {2}", failed.WorkerId, failed.Step, failed.Reason);
            _faults.Add("worker-failed", failed.Step, failed.WorkerId, $"re-assigned: {failed.Reason}", worker: failed.WorkerId);
            _onWorkerLost?.Invoke(failed.WorkerId);
        });
    }

    /// <summary>A "cluster" line in the run folder's events when the nodes or the live workers changed.</summary>
    private void ClusterChanged() =>
        _run.Snapshot(_state?.Step ?? 0, _members, _unreachable, _placement, _work.Alive, _cluster.SelfAddress);

    private IEnumerable<string> WorkersOn(Address node) =>
        _placement.Where(p => p.Value == node.ToString()).Select(p => p.Key);

    private void NodeLost(Address node, string kind)
    {
        if (node == _cluster.SelfAddress)
        {
            return;
        }
        _unreachable.Add(node);
        foreach (var worker in WorkersOn(node).ToList())
        {
            if (_work.MarkDead(worker))
            {
                _faults.Add(kind, _state?.Step ?? 0, $"{worker}@{node}", "its slices went to live workers", worker,
                    node.ToString());
                _onWorkerLost?.Invoke(worker);
            }
        }
    }

    // ---- phase 1: wait until min-nodes members are up and their caches known ----

    private void WaitingForMembers()
    {
        _resuming = _context.Options.CheckpointDir is { } dir && new CheckpointStore(dir).List().Any();
        Common();
        _onMembersChanged = () =>
        {
            // A refused node (other options) is a member with a cache, but must not start the job. A run that resumes
            // (a checkpoint exists: the singleton moved) goes on with the nodes it has.
            if (_caches.Keys.Count(a => _accepted.Contains(a.ToString())) >= (_resuming ? 1 : _context.Outputs.MinNodes))
            {
                _workers.Tell(GetCurrentRegions.Instance, Self);
            }
        };
        // Start only when every node's shard region is known, so the workers spread over all the nodes.
        Receive<CurrentRegions>(regions =>
        {
            if (regions.Regions.Count >= _context.Outputs.MinNodes)
            {
                StartWorkers();
            }
            else
            {
                Timers.StartSingleTimer("regions", GetCurrentRegions.Instance, TimeSpan.FromMilliseconds(200));
            }
        });
        Receive<GetCurrentRegions>(ask => _workers.Tell(ask, Self));
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
        StartWaiting(() => _workers.Tell(new StartWorker(_workerIds[next], _runId), Self), () => "starting the workers");
        Become(() =>
        {
            Receive<WorkerStarted>(started =>
            {
                if (started.RunId != _runId || started.WorkerId != _workerIds[next])
                {
                    return;
                }
                _placement[started.WorkerId] = started.NodeAddress;
                ClusterChanged();
                if (++next < _workerIds.Length)
                {
                    _workers.Tell(new StartWorker(_workerIds[next], _runId), Self);
                }
                else
                {
                    StartStatistics();
                }
            });
            Common();
            ReceiveAny(_ => { });
        });
    }

    // ---- phase 3: distributed feature statistics, merged in chunk order ----

    private void StartStatistics()
    {
        _log.Info("run {0}: {1} members, {2} workers", _runId, _members.Count, _workerIds.Length);
        var train = _context.RawData.Train;
        var chunkRows = FeatureStatistics.DefaultChunkRows;
        var chunks = (train.Count + chunkRows - 1) / chunkRows;
        var partials = new FeatureStatistics?[chunks];
        var received = 0;
        void Send(IEnumerable<int> missing)
        {
            foreach (var (worker, first, count) in Spread(missing.ToList()))
            {
                _workers.Tell(new ComputeStatistics(worker, _runId, first, count, chunkRows), Self);
            }
        }
        Send(Enumerable.Range(0, chunks));
        StartWaiting(() => Send(Enumerable.Range(0, chunks).Where(c => partials[c] is null)), () => "feature statistics");
        Become(() =>
        {
            Common();
            Receive<StatisticsResult>(result =>
            {
                if (result.RunId != _runId || result.Chunk < 0 || result.Chunk >= chunks || partials[result.Chunk] is not null
                    || !FromMember(result))
                {
                    return;
                }
                var rows = Math.Min(chunkRows, train.Count - (long)result.Chunk * chunkRows);
                if (result.Count != rows || result.Mean.Length != train.FeatureCount || result.M2.Length != train.FeatureCount)
                {
                    Senders.Drop(_log, result, Sender, $"statistics of chunk {result.Chunk} with the wrong shape");
                    return;
                }
                partials[result.Chunk] = new FeatureStatistics(result.Count, result.Mean, result.M2);
                Progressed();
                if (++received < chunks)
                {
                    return;
                }
                var merged = FeatureStatistics.MergeInOrder(train.FeatureCount, partials!);
                _setup = _context.UseNormaliser(FeatureNormaliser.FromStatistics(merged));
                _schedule = new RunSchedule(_setup);
                _state = RestoreOrStart(_setup);
                _reducer = new GradientTreeReducer(_setup.Options.Slices, _context.Pool);
                _run.Info("run-started", $"training steps {_state.Step}..{_setup.TotalSteps - 1}: {_workerIds.Length} workers, "
                                         + $"nodes {_members.Count}, coordinator on {_cluster.SelfAddress}", _state.Step);
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

    /// <summary>A coordinator that starts after another (the singleton moved) resumes from the newest valid checkpoint.</summary>
    private TrainingState RestoreOrStart(TrainingSetup setup)
    {
        if (setup.Options.CheckpointDir is not { } dir)
        {
            return setup.NewState();
        }
        var restored = new CheckpointStore(dir).RestoreNewestValid(setup, w => _log.Warning(w));
        if (restored is null)
        {
            return setup.NewState();
        }
        _resumedFrom = restored.Step;
        _faults.Add("resumed-from-checkpoint", restored.Step, dir,
            $"a coordinator incarnation resumed at step {restored.Step} and replays deterministically",
            node: _cluster.SelfAddress.ToString());
        _log.Warning("resuming from the checkpoint at step {0} in {1}", restored.Step, dir);
        return restored;
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
        _verifier.Expire(DateTime.UtcNow);
        _faultsAtStepStart = _faults.Records.Count;
        Array.Clear(_stepSlices);
        _stepStragglers.Clear();
        var silentBefore = _work.Silent.ToHashSet();
        SendAll(_work.BeginStep(DateTime.UtcNow), step);
        foreach (var worker in _work.Silent.Where(w => !silentBefore.Contains(w)))
        {
            _faults.Add("worker-silent", step, $"{worker}@{_placement.GetValueOrDefault(worker, "?")}",
                $"no answer to its last step; left out of the next steps until it answers (at most {WorkAssignment.SilenceGrace.TotalSeconds:F0} s)",
                worker, _placement.GetValueOrDefault(worker));
        }
        _onWorkerLost = worker => SendAll(_work.Reassign(worker, _reducer!.IsCovered), step);
        StartWaiting(() =>
        {
            var covered = (Func<int, bool>)_reducer!.IsCovered;
            if (_work.Current.Count == 0)
            {
                SendAll(_work.BeginStep(DateTime.UtcNow), step);
                return;
            }
            var copies = _work.Speculate(covered);
            foreach (var copy in copies)
            {
                var owner = _work.Current.FirstOrDefault(a => !a.Copy && a.First <= copy.First && copy.First < a.End);
                _faults.Add("straggler", step, owner?.Worker ?? "?",
                    $"slices {copy.First}..{copy.End - 1} copied to {copy.Worker}; the first result wins", owner?.Worker);
                if (owner is not null && !_stepStragglers.Contains(owner.Worker))
                {
                    _stepStragglers.Add(owner.Worker);
                }
            }
            SendAll(copies, step);
        }, () => $"step {step}", StragglerDelay());
        Become(() =>
        {
            Receive<SliceResult>(OnSliceResult);
            Common();
            ReceiveAny(_ => { });
        });
    }

    private void SendAll(IEnumerable<Assignment> assignments, long step)
    {
        foreach (var a in assignments)
        {
            _workers.Tell(new ComputeSlices(a.Worker, _runId, step, _current!.Version, a.First, a.Count), Self);
        }
    }

    private void OnSliceResult(SliceResult result)
    {
        if (!FromWorker(result, result.WorkerId))
        {
            return;
        }
        var state = _state!;
        var setup = _setup!;
        var node = new TreeNode(result.Level, result.Index);
        if (result.RunId == _runId)
        {
            _work.Answered(result.WorkerId);
        }
        if (result.RunId != _runId || result.Sum.Length != setup.Network.ResultLength || result.Level < 0
            || result.Index < 0 || result.Level > GradientTree.RootLevel(setup.Options.Slices)
            || ((long)result.Index << result.Level) >= setup.Options.Slices)
        {
            _log.Debug("dropped a malformed result for step {0} from {1}", result.Step, result.WorkerId);
            return;
        }
        if (result.Step != state.Step || result.Version != _current!.Version || _reducer!.Overlaps(node))
        {
            // Stale (a straggler's, after its copy won) or a duplicate: dropped, but compared where possible.
            CrossCheck(node, result);
            _context.Pool.Return(result.Sum);
            return;
        }
        var first = node.First;
        var end = node.End(setup.Options.Slices);
        if (!double.IsFinite(Elementwise.SumOfSquares(result.Sum.AsSpan(0, setup.Network.ParameterCount)))
            && !_work.WasRecomputed(first, end))
        {
            // A NaN/Inf sum is recomputed on another worker once; if that one agrees, it is the data's, and the health
            // monitor deals with it; if not, the first worker was wrong.
            var strikes = _verifier.Strike(result.WorkerId);
            var handling = $"dropped; slices {first}..{end - 1} recomputed elsewhere";
            if (strikes >= 2)
            {
                _work.Exclude(result.WorkerId, "returned non-finite gradients repeatedly");
                handling += $"; {result.WorkerId} excluded after {strikes} corrupt results";
                _run.WorkerExcluded(result.WorkerId, state.Step, $"returned non-finite gradients {strikes} times");
                ClusterChanged();
            }
            _faults.Add("non-finite-result", state.Step, result.WorkerId, handling, result.WorkerId);
            SendAll(_work.Recompute(first, end, result.WorkerId), state.Step);
            return;
        }
        if (_work.Current.Any(a => a.Copy && a.First < node.End(setup.Options.Slices) && node.First < a.End))
        {
            // A speculative copy of these slices is out: keep a fingerprint so the two results can be compared.
            _verifier.Remember(result.Step, node, result.WorkerId, result.Sum, DateTime.UtcNow);
        }
        _reducer!.Add(node, result.Sum);
        Array.Fill(_stepSlices, result.WorkerId, first, end - first);
        Progressed();
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

    /// <summary>
    /// A duplicate (a speculative copy, or a re-assigned run) is dropped, but where it covers exactly a subtree already
    /// received, the two must be bit-identical: a difference means one of the two workers computes wrongly.
    /// </summary>
    private void CrossCheck(TreeNode node, SliceResult duplicate)
    {
        var comparison = _verifier.Compare(duplicate.Step, node, duplicate.WorkerId, duplicate.Sum, out var first);
        if (comparison == ResultVerifier.Comparison.Nothing)
        {
            _log.Debug("dropped a duplicate result for step {0} from {1}", duplicate.Step, duplicate.WorkerId);
        }
        else if (comparison == ResultVerifier.Comparison.Different)
        {
            var end = node.End(_setup!.Options.Slices) - 1;
            _log.Error("{0} and {1} disagree on slices {2}..{3} of step {4}", first, duplicate.WorkerId, node.First, end,
                duplicate.Step);
            _faults.Add("duplicate-mismatch", duplicate.Step, $"{first} vs {duplicate.WorkerId}",
                $"the two results for slices {node.First}..{end} differ: one worker is corrupt; the first result was used",
                duplicate.WorkerId);
        }
    }

    private void ApplyStep()
    {
        var setup = _setup!;
        var state = _state!;
        StopWaiting();
        _onWorkerLost = null;
        var applyClock = Stopwatch.StartNew();
        // The optimizer writes the new parameters into the next version's buffer as it updates them.
        var report = state.Apply(_reducer!.Root, setup.Options.Batch, setup.Options.Slices, RingSlot(state.Step + 1).Parameters);
        _reducer.Reset();
        PublishWeights(parametersWritten: true);
        var apply = applyClock.Elapsed.TotalSeconds;
        var wall = _stepClock.Elapsed.TotalSeconds;
        _trainSeconds += wall;
        _computeSeconds += _stepCompute;
        _coordinatorSeconds += apply;
        _stepsRun++;
        _lastLoss = report.Loss;
        // Only fault-free steps set the straggler deadline: a step that waited for a straggler (or a lost worker) would
        // raise the median, the next deadline with it, and a persistent straggler would slow every step more and more.
        if (_faults.Records.Count == _faultsAtStepStart)
        {
            Remember(wall);
        }
        foreach (var recovered in _faults.StepCompleted())
        {
            _run.Fault(recovered);
        }
        var (epoch, stepInEpoch) = setup.Plan.Locate(report.Step);
        var workersAlive = _work.Alive.Count;
        _run.Step(report, epoch, state, setup.Options.Batch, wall, _stepCompute, apply, workersAlive, _stepSlices,
            _stepStragglers);
        TrainingMetrics.RecordStep(wall, _stepsRun * setup.Options.Batch / _trainSeconds, report.Loss, report.GradientNorm,
            report.Clipped);
        TrainingMetrics.SetWorkersAlive(workersAlive);

        var observer = _context.Observer;
        if (report.Warning is not null)
        {
            observer?.OnWarning(report.Warning.Text);
            _run.Health(report.Warning, report.Step);
        }
        observer?.OnStep(report, epoch, stepInEpoch, setup.Plan.StepsPerEpoch,
            _stepsRun * setup.Options.Batch / _trainSeconds);
        var endOfEpoch = _schedule!.EndsEpoch(stepInEpoch);
        if (setup.Options.CheckpointDir is { } dir && _schedule.CheckpointDue(state.Step, endOfEpoch))
        {
            _run.Checkpoint(new CheckpointStore(dir).Save(setup, state), state.Step);
        }
        if (endOfEpoch)
        {
            foreach (var warning in state.Health.EndEpoch(epoch))
            {
                observer?.OnWarning(warning.Text);
                _run.Health(warning, report.Step);
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
        void Send(IEnumerable<int> missing)
        {
            foreach (var (worker, first, count) in Spread(missing.ToList()))
            {
                _workers.Tell(new EvaluateChunks(worker, _runId, version, first, count), Self);
            }
        }
        Send(Enumerable.Range(0, chunks));
        StartWaiting(() => Send(Enumerable.Range(0, chunks).Where(c => !done[c])), () => $"evaluation after step {_state!.Step}");
        Become(() =>
        {
            Common();
            Receive<EvaluationResult>(result =>
            {
                if (result.RunId != _runId || result.Version != version || result.Chunk < 0 || result.Chunk >= chunks
                    || done[result.Chunk] || !FromMember(result))
                {
                    return;
                }
                done[result.Chunk] = true;
                lossSums[result.Chunk] = result.LossSum;
                correct[result.Chunk] = result.Correct;
                Progressed();
                if (++received < chunks)
                {
                    return;
                }
                StopWaiting();
                _test = Evaluator.Combine(lossSums, correct, test.Count);
                _run.Evaluation(_state!.Step - 1, epoch, _test);
                _context.Observer?.OnEpoch(epoch, trainLoss, _test);
                StartStep();
            });
            ReceiveAny(_ => { });
        });
    }

    // ---- waiting with deadlines: never hang ----

    /// <summary>
    /// While a phase waits for results: after <paramref name="firstNudge"/> (and then every few seconds) it nudges —
    /// re-sends or speculates; when nothing has progressed for the bounded worker wait it checkpoints and gives up with
    /// the command that resumes.
    /// </summary>
    private void StartWaiting(Action nudge, Func<string> what, TimeSpan? firstNudge = null)
    {
        _waitingPhase = ++_phase;
        _nudge = nudge;
        _waitingFor = what;
        Progressed();
        Timers.StartSingleTimer("tick", new Tick(_waitingPhase), firstNudge ?? _context.Tuning.ResendAfter);
    }

    private void OnTick(Tick tick)
    {
        if (tick.Phase != _waitingPhase || _phase != _waitingPhase)
        {
            return;
        }
        if (DateTime.UtcNow - _lastProgress > _context.Tuning.WorkerWait)
        {
            GiveUp(_waitingFor?.Invoke() ?? "the job");
            return;
        }
        _nudge?.Invoke();
        Timers.StartSingleTimer("tick", new Tick(_waitingPhase), _context.Tuning.ResendAfter);
    }

    private void StopWaiting()
    {
        _phase++;
        Timers.Cancel("tick");
    }

    private void Progressed() => _lastProgress = DateTime.UtcNow;

    private TimeSpan StragglerDelay()
    {
        if (_recentSteps.Count == 0)
        {
            return _context.Tuning.ResendAfter;
        }
        var sorted = _recentSteps.Order().ToList();
        var median = sorted[sorted.Count / 2];
        var delay = TimeSpan.FromSeconds(_context.Tuning.StragglerFactor * median);
        return delay < _context.Tuning.MinStragglerDelay ? _context.Tuning.MinStragglerDelay : delay;
    }

    private void Remember(double stepSeconds)
    {
        _recentSteps.Add(stepSeconds);
        if (_recentSteps.Count > 50)
        {
            _recentSteps.RemoveAt(0);
        }
    }

    private void GiveUp(string what)
    {
        var alive = _work.Alive.Count;
        var message = $"no progress on {what} for {_context.Tuning.WorkerWait.TotalSeconds:F0} s with {alive} of {_workerIds.Length} workers alive";
        if (_setup?.Options.CheckpointDir is { } dir && _state is not null)
        {
            _run.Checkpoint(new CheckpointStore(dir).Save(_setup, _state), _state.Step);
            message += $"; checkpointed step {_state.Step}; resume with: distbp simulate --resume {dir} (or distbp train --resume {dir})";
        }
        Fail(message);
    }

    // ---- the end ----

    private void Finish()
    {
        StopWaiting();
        var setup = _setup!;
        var state = _state!;
        var result = _schedule!.Result(state, _stepsRun, _trainSeconds, _lastLoss, _test);
        var steps = Math.Max(1, _stepsRun);
        var extra = new JsonObject
        {
            ["bytes_per_step"] = _bytesSent / (double)steps,
            ["placement"] = new JsonObject(_placement.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
            ["resumed_from_step"] = _resumedFrom,
            ["excluded_workers"] = new JsonObject(_work.Excluded.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
            ["faults"] = _faults.ToJson(),
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
            WriteOutputs(setup, state, TrainingSummary.ToJson(summary));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Fail($"could not write the outputs: {e.Message}");
            return;
        }
        _run.Info("run-finished", $"training finished at step {state.Step}: test accuracy {_test.Accuracy:P2}, "
                                  + $"weights_sha256 {result.WeightsSha256}", state.Step);
        CloseRun();
        _context.Finished.TrySetResult(new JobOutcome(0, "done", summary, result));
        var finished = new JobFinished(_runId, 0, "training finished");
        Broadcast(finished);
        if (_cluster.State.Unreachable.Count > 0)
        {
            Timers.StartSingleTimer(DownAfterTheEnd.Instance, DownAfterTheEnd.Instance, EndDowningGrace);
        }
        Become(() =>
        {
            // A node that joins after the end (a restarted pod) is told at once that there is nothing left to do.
            Receive<RegisterNode>(_ => Sender.Tell(finished));
            Receive<ClusterEvent.UnreachableMember>(_ =>
                Timers.StartSingleTimer(DownAfterTheEnd.Instance, DownAfterTheEnd.Instance, EndDowningGrace));
            Receive<DownAfterTheEnd>(_ => DownStillUnreachable());
            Common();
            ReceiveAny(_ => { });
        });
    }

    /// <summary>
    /// The model and summary: always into the run folder, and copied to --out and --summary-json (the same bytes).
    /// </summary>
    private void WriteOutputs(TrainingSetup setup, TrainingState state, string summaryJson)
    {
        var snapshot = CheckpointStore.Snapshot(setup, state, "model");
        var outputs = _context.Outputs;
        if (_run.Files is { } files)
        {
            ModelFile.Write(files.Model, snapshot);
            AtomicWrite.Text(files.Summary, summaryJson);
            if (outputs.ModelPath is { } modelCopy)
            {
                AtomicWrite.Copy(files.Model, modelCopy);
            }
            if (outputs.SummaryPath is { } summaryCopy)
            {
                AtomicWrite.Copy(files.Summary, summaryCopy);
            }
            return;
        }
        if (outputs.ModelPath is { } modelPath)
        {
            ModelFile.Write(modelPath, snapshot);
        }
        if (outputs.SummaryPath is { } summaryPath)
        {
            AtomicWrite.Text(summaryPath, summaryJson);
        }
    }

    /// <summary>Faults that never saw a completed step go out without a recovery time; then every line is written.</summary>
    private void CloseRun()
    {
        foreach (var fault in _faults.Open)
        {
            _run.Fault(fault);
        }
        _run.Dispose();
    }

    private void Fail(string message)
    {
        _log.Error("training failed: {0}", message);
        _run.Info("run-failed", message, _state?.Step ?? 0);
        CloseRun();
        StopWaiting();
        _context.Finished.TrySetResult(new JobOutcome(1, message));
        Broadcast(new JobFinished(_runId, 1, message));
        DownUnreachableNodes();
        Become(() => ReceiveAny(_ => { }));
    }

    /// <summary>
    /// The job is over, so a node that is unreachable now (killed, frozen, cut off) has nothing left to give. Downing it
    /// at once lets the others leave: leaving needs convergence, which an unreachable member blocks until the Split
    /// Brain Resolver downs it (stable-after, ~4 s later) — time every run with a lost node spent doing nothing.
    /// </summary>
    private void DownUnreachableNodes()
    {
        foreach (var member in _cluster.State.Unreachable.Where(m => m.Status != MemberStatus.Down))
        {
            _log.Info("job over: downing unreachable node {0} so that the others can leave", member.Address);
            _cluster.Down(member.Address);
        }
    }

    /// <summary>
    /// After a finished job, how long a member may stay unreachable before the coordinator downs it (see
    /// <see cref="DownStillUnreachable"/>): a node frozen for a moment comes back within it and leaves like the others.
    /// </summary>
    private static readonly TimeSpan EndDowningGrace = TimeSpan.FromSeconds(1.5);

    private sealed class DownAfterTheEnd
    {
        public static readonly DownAfterTheEnd Instance = new();
    }

    /// <summary>
    /// A node killed shortly before the end of a finished job is not unreachable yet when the job ends, or only just;
    /// its death then holds up everyone's leave until the Split Brain Resolver downs it (stable-after, 4 s later). The
    /// job is over and the node has nothing left to give: the coordinator downs it once it has stayed unreachable for
    /// <see cref="EndDowningGrace"/> — keep-majority's decision with a shorter wait, so only a side that holds the
    /// majority takes it. (Downing a node that is merely frozen costs more: back, downed and still reachable, it holds
    /// up convergence until it is unreachable again; hence the grace.)
    /// </summary>
    private void DownStillUnreachable()
    {
        var state = _cluster.State;
        if (2 * (state.Members.Count - state.Unreachable.Count) > state.Members.Count)
        {
            DownUnreachableNodes();
        }
    }

    // ---- helpers ----

    /// <summary>
    /// A worker's message is believed only from that worker: the sending actor is named by the worker id (a sharding
    /// entity's name is its id) and lives on a member. A wrong one is dropped and counted.
    /// </summary>
    private bool FromWorker(object message, string workerId)
    {
        if (Sender.Path.Name == workerId && Senders.IsLocalOrMember(Sender, Context.System))
        {
            return true;
        }
        Senders.Drop(_log, message, Sender, $"only worker {workerId} on a member node may send it");
        return false;
    }

    private bool FromMember(object message) => Senders.FromMember(Sender, Context.System, _log, message);

    /// <summary>Cuts work items into contiguous runs, one per live worker that is not silent.</summary>
    private IEnumerable<(string Worker, int First, int Count)> Spread(IReadOnlyList<int> items)
    {
        var alive = _work.Ready;
        if (alive.Count == 0)
        {
            yield break;
        }
        for (var k = 0; k < alive.Count; k++)
        {
            var from = k * items.Count / alive.Count;
            var to = (k + 1) * items.Count / alive.Count;
            // Items are sorted; send each maximal consecutive run separately.
            var i = from;
            while (i < to)
            {
                var j = i + 1;
                while (j < to && items[j] == items[j - 1] + 1)
                {
                    j++;
                }
                yield return (alive[k], items[i], j - i);
                i = j;
            }
        }
    }

    private NormaliserReady NormaliserMessage() =>
        new(_runId, _setup!.Normaliser.Mean, _setup.Normaliser.Std);

    /// <summary>
    /// A read-only copy of the weights as version Step, sent once to every node's cache. The copies come from a small
    /// ring of <see cref="WeightsRetention.PublishedVersions"/>, more than a cache keeps, so the oldest buffer is no longer
    /// read by anyone in this process (remote nodes get serialized bytes at send time), and a step allocates nothing.
    /// </summary>
    private void PublishWeights(bool parametersWritten = false)
    {
        var weights = _state!.Weights;
        var (parameters, buffers) = RingSlot(_state.Step);
        if (!parametersWritten)
        {
            weights.Parameters.CopyTo(parameters, 0);
        }
        weights.Buffers.CopyTo(buffers, 0);
        _current = new WeightsVersion(_runId, _state.Step, parameters, buffers);
        foreach (var (address, cache) in _caches)
        {
            if (!_unreachable.Contains(address))
            {
                SendWeights(cache, _current);
            }
        }
    }

    /// <summary>The ring's buffers for the version of <paramref name="step"/>.</summary>
    private (float[] Parameters, float[] Buffers) RingSlot(long step)
    {
        var weights = _state!.Weights;
        var slot = (int)(step % WeightsRetention.PublishedVersions);
        _ring[slot] ??= (new float[weights.Parameters.Length], new float[weights.Buffers.Length]);
        return _ring[slot]!.Value;
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
