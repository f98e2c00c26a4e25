using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Cluster.Trust;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// The cluster singleton that owns the weights. It waits for enough members, starts the workers, merges their feature
/// statistics in chunk order, then runs the step protocol of docs/ARCHITECTURE.md: give each live worker a contiguous
/// run of slices by step id, complete the canonical tree from the subtree sums they return, apply the step (health
/// veto, clipping, optimizer) with the same <see cref="TrainingState"/> as the single-process trainer, and broadcast the
/// new weights once per node. Faults never change the result, only who computes what: a lost worker's slices go to
/// live workers at once, a straggler's get a speculative copy, a NaN result is recomputed elsewhere, a new incarnation
/// resumes from the newest valid checkpoint. Results for another run, step or version, and duplicates, are dropped.
/// <para>
/// The actor routes messages and moves between phases; the state of each concern lives in its own room:
/// <see cref="ClusterView"/> and <see cref="Membership"/> (members, caches, placement, lost workers),
/// <see cref="WorkAssignment"/> (who computes which slices), <see cref="ResultVerifier"/> (duplicates and corrupt
/// results), <see cref="StatisticsRound"/>, <see cref="StepRound"/> and <see cref="EvaluationRound"/> (one phase's
/// results), <see cref="PublishedWeights"/> (the versions handed out), <see cref="PhaseWait"/> (never hang),
/// <see cref="Resume"/>, <see cref="RunProgress"/> (the step loop shared with the single-process trainer, and the end),
/// <see cref="RunRecorder"/> and <see cref="FaultLog"/> (what happened), <see cref="EndOfJob"/>, and
/// <see cref="CoordinatorOutbox"/> (everything it sends).
/// </para>
/// </summary>
public sealed class TrainingCoordinator : ReceiveActor, IWithTimers
{
    // A straggler's result may arrive many steps late (the others go on without it while it is silent): its copy's
    // fingerprint is kept this long so the late result can still be cross-checked. By time, not steps: a step of a small
    // model takes well under a millisecond, so 1,000 steps had gone by before a 1.5 s straggler answered.
    private static readonly TimeSpan FingerprintKeep = TimeSpan.FromSeconds(30);

    private enum Phase { WaitingForMembers, StartingWorkers, Statistics, Setup, Step, Evaluation, Ended }

    private readonly NodeContext _context;
    private readonly JobSpec _spec;
    private readonly IActorRef _workers;
    private readonly IActorRef _localCache;
    private readonly CoordinatorOutbox _outbox;
    private readonly ChunkAssembler _assembler;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly string _runId;
    private readonly string[] _workerIds;
    private readonly ClusterView _view;
    private readonly WorkAssignment _work;
    private readonly ResultVerifier _verifier = new(FingerprintKeep);
    private readonly FaultLog _faults = new();
    private readonly PhaseWait _wait = new();
    private readonly PublishedWeights _published;
    private RunRecorder _run = RunRecorder.None;
    private Membership _membership = null!; // made in PreStart, with the run folder
    private readonly bool _resuming;
    private Phase _phase = Phase.WaitingForMembers;

    // Known once the feature statistics are merged; the setup, once this node's cache has built it.
    private FeatureNormaliser? _normaliser;
    private TrainingSetup? _setup;
    private TrainingState? _state;
    private StepRound? _round;
    private RunProgress? _progress;
    private long? _resumedFrom;

    /// <param name="context">The job and this node's shared resources.</param>
    /// <param name="workers">The worker entities' shard region.</param>
    /// <param name="localCache">This node's weights cache, which builds the node's setup from the normaliser.</param>
    public TrainingCoordinator(NodeContext context, IActorRef workers, IActorRef localCache)
    {
        _context = context;
        _spec = context.Spec;
        _workers = workers;
        _localCache = localCache;
        var transport = TensorTransport.For(Context.System);
        _assembler = new ChunkAssembler(TensorTransport.SerializerOf(Context.System), maxTransferBytes: _spec.LargestMessageBytes);
        _runId = _spec.ConfigHash;
        _workerIds = Enumerable.Range(0, _spec.Options.Workers).Select(Hosting.WorkerMessageExtractor.WorkerId).ToArray();
        _view = new ClusterView(_cluster.SelfAddress);
        _work = new WorkAssignment(_spec.Options.Slices, _workerIds);
        _published = new PublishedWeights(_runId);
        _outbox = new CoordinatorOutbox(_runId, workers, transport, _view, Context.System, Self);
        _resuming = Resume.HasCheckpoint(_spec.Options);
        Become(WaitingForMembers);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Fires while a phase waits: speculate on stragglers, re-send what is missing, give up after the bounded wait.</summary>
    private sealed record Tick(int Phase);

    private sealed class DownAfterTheEnd
    {
        public static readonly DownAfterTheEnd Instance = new();
    }

    private long Step => _state?.Step ?? 0;

    protected override void PreStart()
    {
        if (_context.HasEnded)
        {
            // A singleton that moves here while the cluster is shutting down after the job must not start it again.
            Become(() => ReceiveAny(_ => { }));
            return;
        }
        try
        {
            _run = RunRecorder.Open(_spec);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var message = $"cannot write the run folder '{_spec.Outputs.RunDir}' ({e.Message})";
            _log.Error(message);
            _context.Ended(new JobOutcome(JobStatus.Refused, message) { About = RefusedInput.RunFolder });
            Become(() => ReceiveAny(_ => { }));
            return;
        }
        _membership = new Membership(_view, _work, _faults, _run, _workerIds, _runId, _spec.ConfigHash, _log);
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.MemberUp), typeof(ClusterEvent.MemberRemoved), typeof(ClusterEvent.UnreachableMember),
            typeof(ClusterEvent.ReachableMember));
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        _run.Dispose();
    }

    // ---- in every phase: membership, registrations, weights requests, late results ----

    private void Common()
    {
        Receive<Tick>(OnTick);
        Receive<SliceResult>(OnLateResult);
        Receive<ClusterEvent.MemberUp>(up =>
        {
            _membership.Up(up.Member, Step);
            _outbox.IdentifyCache(up.Member.Address);
        });
        Receive<ClusterEvent.UnreachableMember>(e => WorkersLost(_membership.Unreachable(e.Member.Address, Step)));
        Receive<ClusterEvent.ReachableMember>(e => _membership.Reachable(e.Member.Address, Step));
        Receive<ClusterEvent.MemberRemoved>(removed =>
        {
            WorkersLost(_membership.Removed(removed.Member.Address, Step, out var restart));
            foreach (var worker in restart)
            {
                _outbox.StartWorker(worker);
            }
        });
        Receive<WorkerStarted>(started =>
        {
            // Where the worker runs is where its answer came from, not what the message says.
            if (started.RunId == _runId && FromWorker(started, started.WorkerId))
            {
                _membership.WorkerStarted(started.WorkerId, Senders.NodeOf(Sender, Context.System), Step);
            }
        });
        Receive<ActorIdentity>(OnCacheIdentified);
        Receive<RegisterNode>(OnRegisterNode);
        Receive<TensorChunk>(chunk =>
        {
            if (Senders.Reassemble(_assembler, Sender, Context.System, _log, chunk) is { } complete)
            {
                Self.Forward(complete);
            }
        });
        Receive<PullWeights>(pull =>
        {
            if (FromMember(pull) && _published.Current is { } current && pull.RunId == _runId && pull.Version == current.Version)
            {
                _outbox.Weights(Sender, current);
            }
        });
        Receive<WorkFailed>(failed =>
        {
            if (failed.RunId == _runId && FromWorker(failed, failed.WorkerId))
            {
                _log.Warning("worker {0} could not do its work at step {1}: {2}", failed.WorkerId, failed.Step, failed.Reason);
                _faults.Add("worker-failed", failed.Step, failed.WorkerId, $"re-assigned: {failed.Reason}", worker: failed.WorkerId);
                WorkersLost([failed.WorkerId]);
            }
        });
    }

    /// <summary>
    /// A straggler's result that arrives between steps (evaluation, the end) still shows that its worker is alive, and
    /// is still compared with the copy that won.
    /// </summary>
    private void OnLateResult(SliceResult late)
    {
        if (!FromWorker(late, late.WorkerId))
        {
            return;
        }
        if (late.RunId == _runId)
        {
            _work.Answered(late.WorkerId);
            _round?.CrossCheck(new TreeNode(late.Level, late.Index), late);
        }
        _context.Pool.Return(late.Sum);
    }

    private void OnCacheIdentified(ActorIdentity identity)
    {
        if (identity.MessageId is not Address address || identity.Subject is not { } cache || !_view.CacheFound(address, cache))
        {
            return;
        }
        // A node that comes up mid-run gets the normaliser and the current weights at once.
        if (_normaliser is not null)
        {
            _outbox.Normaliser(cache, _normaliser);
        }
        if (_published.Current is { } current)
        {
            _outbox.Weights(cache, current);
        }
        MembersChanged();
    }

    private void OnRegisterNode(RegisterNode node)
    {
        // The node is the one the registration came from (its agent), and must be a member.
        if (!FromMember(node))
        {
            return;
        }
        Sender.Tell(_membership.Register(Senders.NodeOf(Sender, Context.System), node.ConfigHash, out var newlyAccepted));
        if (newlyAccepted)
        {
            MembersChanged();
        }
    }

    /// <summary>
    /// Before the workers start, enough accepted nodes start them; a refused node (other options) is a member with a
    /// cache, but must not. A run that resumes (a checkpoint exists: the singleton moved) goes on with the nodes it has.
    /// </summary>
    private void MembersChanged()
    {
        if (_phase == Phase.WaitingForMembers
            && _view.AcceptedCaches >= (_resuming ? 1 : _spec.Outputs.MinNodes))
        {
            _workers.Tell(GetCurrentRegions.Instance, Self);
        }
    }

    /// <summary>Lost workers' slices go to live workers at once (in a step; in other phases there is nothing to move).</summary>
    private void WorkersLost(IReadOnlyList<string> workers)
    {
        foreach (var worker in workers.Where(_ => _phase == Phase.Step))
        {
            _outbox.Compute(_round!.WorkerLost(worker), _round.Step, _published.Current!.Version);
        }
    }

    // ---- before training: members, workers (one at a time), feature statistics, this node's setup ----

    private void WaitingForMembers()
    {
        Common();
        // Start only when every node's shard region is known, so the workers spread over all the nodes.
        Receive<CurrentRegions>(regions =>
        {
            if (regions.Regions.Count >= _spec.Outputs.MinNodes)
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

    /// <summary>
    /// Shard allocations made concurrently all see the same (empty) allocation table and land on one node; started one
    /// after the other, the least-shards strategy spreads the workers over the nodes.
    /// </summary>
    private void StartWorkers()
    {
        _phase = Phase.StartingWorkers;
        var next = 0;
        _outbox.StartWorker(_workerIds[next]);
        StartWaiting(() => _outbox.StartWorker(_workerIds[next]), () => "starting the workers");
        Become(() =>
        {
            Receive<WorkerStarted>(started =>
            {
                if (started.RunId != _runId || started.WorkerId != _workerIds[next])
                {
                    return;
                }
                _view.Place(started.WorkerId, started.NodeAddress);
                _membership.Snapshot(Step);
                if (++next < _workerIds.Length)
                {
                    _outbox.StartWorker(_workerIds[next]);
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

    private void StartStatistics()
    {
        _phase = Phase.Statistics;
        _log.Info("run {0}: {1} members, {2} workers", _runId, _view.Members.Count, _workerIds.Length);
        var round = new StatisticsRound(_spec.RawData.Train);
        _outbox.Statistics(_work.Spread(round.Missing), round.ChunkRows);
        StartWaiting(() => _outbox.Statistics(_work.Spread(round.Missing), round.ChunkRows), () => "feature statistics");
        Become(() =>
        {
            Common();
            Receive<StatisticsResult>(result =>
            {
                if (result.RunId != _runId || !round.IsAwaited(result.Chunk) || !FromMember(result))
                {
                    return;
                }
                if (!round.HasShape(result.Chunk, result.Count, result.Mean.Length, result.M2.Length))
                {
                    Senders.Drop(_log, result, Sender, $"statistics of chunk {result.Chunk} with the wrong shape");
                    return;
                }
                _wait.Progressed(DateTime.UtcNow);
                if (round.Add(result.Chunk, new FeatureStatistics(result.Count, result.Mean, result.M2)) is { } normaliser)
                {
                    AwaitSetup(normaliser);
                }
            });
            ReceiveAny(_ => { });
        });
    }

    /// <summary>
    /// The normaliser goes to every node's cache, each of which normalises its node's data once; this node's cache
    /// answers with the setup it built, which the coordinator trains with.
    /// </summary>
    private void AwaitSetup(FeatureNormaliser normaliser)
    {
        _phase = Phase.Setup;
        _normaliser = normaliser;
        foreach (var cache in _view.Caches.Values.Append(_localCache).Distinct())
        {
            _outbox.Normaliser(cache, normaliser);
        }
        StartWaiting(() => _outbox.Normaliser(_localCache, normaliser), () => "this node's setup");
        Become(() =>
        {
            Common();
            // SetupReady is a local message (it holds this node's data): only this process can send it.
            Receive<SetupReady>(ready => StartTraining(ready.Setup));
            ReceiveAny(_ => { });
        });
    }

    private void StartTraining(TrainingSetup setup)
    {
        _setup = setup;
        _state = Resume.RestoreOrStart(setup, _faults, _log, _cluster.SelfAddress.ToString(), out _resumedFrom);
        _progress = new RunProgress(setup, _run, _faults, _context.Progress);
        _outbox.Timings = _progress.Timings;
        _round = new StepRound(_runId, setup, _work, _verifier, _faults, _context.Pool, _log);
        _run.Info("run-started", $"training steps {_state.Step}..{setup.TotalSteps - 1}: {_workerIds.Length} workers, "
                                 + $"nodes {_view.Members.Count}, coordinator on {_cluster.SelfAddress}", _state.Step);
        _outbox.WeightsToAll(_published.Publish(_state.Step, _state.Weights, parametersWritten: false));
        StartStep();
    }

    // ---- training: steps, and an evaluation after each epoch ----

    private void StartStep()
    {
        var (step, round) = (_state!.Step, _round!);
        if (step >= _setup!.TotalSteps)
        {
            Finish();
            return;
        }
        _phase = Phase.Step;
        _progress!.BeginStep();
        var version = _published.Current!.Version;
        _outbox.Compute(round.Begin(step, version, DateTime.UtcNow, _view.PlacementOf), step, version);
        StartWaiting(() => _outbox.Compute(round.Speculate(DateTime.UtcNow), step, version), () => $"step {step}",
            _progress.Timings.StragglerDelay(_spec.Tuning));
        Become(() =>
        {
            Receive<SliceResult>(OnSliceResult);
            Common();
            ReceiveAny(_ => { });
        });
    }

    private void OnSliceResult(SliceResult result)
    {
        if (!FromWorker(result, result.WorkerId))
        {
            return;
        }
        var intake = _round!.Take(result, DateTime.UtcNow);
        if (intake.ExcludedAfter is { } strikes)
        {
            _run.WorkerExcluded(result.WorkerId, _round.Step, $"returned non-finite gradients {strikes} times");
            _membership.Snapshot(Step);
        }
        _outbox.Compute(intake.Recompute, _round.Step, _published.Current!.Version);
        if (!intake.Taken)
        {
            return;
        }
        _wait.Progressed(DateTime.UtcNow);
        _outbox.Received(Sender, result.Sum.Length);
        _progress!.Timings.Computed(result.ComputeSeconds);
        if (intake.Complete)
        {
            ApplyStep(_state!);
        }
    }

    private void ApplyStep(TrainingState state)
    {
        StopWaiting();
        var applyClock = Stopwatch.StartNew();
        // The optimizer writes the new parameters into the next version's buffer as it updates them.
        var report = state.Apply(_round!.Tree.Root, _setup!.Options.Batch, _setup.Options.Slices,
            _published.ParametersOf(state.Step + 1, state.Weights));
        _round.Tree.Reset();
        _outbox.WeightsToAll(_published.Publish(state.Step, state.Weights, parametersWritten: true));
        if (_progress!.Stepped(report, state, applyClock.Elapsed.TotalSeconds, _round, _work.Alive.Count, out var epoch))
        {
            StartEvaluation(new EvaluationRound(_setup.Data.Test.Count, _published.Current!.Version, epoch));
        }
        else
        {
            StartStep();
        }
    }

    private void StartEvaluation(EvaluationRound round)
    {
        _phase = Phase.Evaluation;
        _outbox.Evaluate(_work.Spread(round.Missing), round.Version);
        StartWaiting(() => _outbox.Evaluate(_work.Spread(round.Missing), round.Version), () => $"evaluation after step {Step}");
        Become(() =>
        {
            Common();
            Receive<EvaluationResult>(result =>
            {
                if (result.RunId != _runId || !round.IsAwaited(result.Version, result.Chunk) || !FromMember(result))
                {
                    return;
                }
                _wait.Progressed(DateTime.UtcNow);
                if (round.Add(result.Chunk, result.LossSum, result.Correct) is { } test)
                {
                    StopWaiting();
                    _progress!.Evaluated(Step - 1, round.Epoch, test);
                    StartStep();
                }
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
    private void StartWaiting(Action nudge, Func<string> what, TimeSpan? firstNudge = null) =>
        Timers.StartSingleTimer("tick", new Tick(_wait.Start(nudge, what, DateTime.UtcNow)), firstNudge ?? _spec.Tuning.ResendAfter);

    private void StopWaiting()
    {
        _wait.Stop();
        Timers.Cancel("tick");
    }

    private void OnTick(Tick tick)
    {
        switch (_wait.OnTick(tick.Phase, DateTime.UtcNow, _spec.Tuning.WorkerWait))
        {
            case PhaseWait.Verdict.GiveUp:
                GiveUp(_wait.Waiting);
                break;
            case PhaseWait.Verdict.Nudge:
                _wait.Nudge();
                Timers.StartSingleTimer("tick", tick, _spec.Tuning.ResendAfter);
                break;
        }
    }

    private void GiveUp(string what)
    {
        var message = $"no progress on {what} for {_spec.Tuning.WorkerWait.TotalSeconds:F0} s with {_work.Alive.Count} of {_workerIds.Length} workers alive";
        string? resumeFrom = null;
        if (_setup?.Options.CheckpointDir is { } dir && _state is not null)
        {
            _run.Checkpoint(new CheckpointStore(dir).Save(_setup, _state), _state.Step);
            message += $"; checkpointed step {_state.Step} in {dir}";
            resumeFrom = dir;
        }
        Fail(message, resumeFrom);
    }

    // ---- the end ----

    private void Finish()
    {
        StopWaiting();
        _phase = Phase.Ended;
        try
        {
            _context.Ended(_progress!.Finish(_state!, _view, _work, _workerIds.Length, _resumedFrom, _spec.Outputs));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Fail($"could not write the outputs: {e.Message}");
            return;
        }
        var finished = new JobFinished(_runId, JobStatus.Finished, "training finished", "");
        _outbox.Broadcast(finished);
        if (_cluster.State.Unreachable.Count > 0)
        {
            Timers.StartSingleTimer(DownAfterTheEnd.Instance, DownAfterTheEnd.Instance, EndOfJob.DowningGrace);
        }
        Become(() =>
        {
            // A node that joins after the end (a restarted pod) is told at once that there is nothing left to do.
            Receive<RegisterNode>(_ => Sender.Tell(finished));
            Receive<ClusterEvent.UnreachableMember>(_ =>
                Timers.StartSingleTimer(DownAfterTheEnd.Instance, DownAfterTheEnd.Instance, EndOfJob.DowningGrace));
            Receive<DownAfterTheEnd>(_ => EndOfJob.DownStillUnreachable(_cluster, _log));
            Common();
            ReceiveAny(_ => { });
        });
    }

    /// <summary>The job stops here; <paramref name="resumeFrom"/> is the checkpoint folder it can resume from, if any.</summary>
    private void Fail(string message, string? resumeFrom = null)
    {
        _phase = Phase.Ended;
        _log.Error("training failed: {0}", message);
        _run.Info("run-failed", message, Step);
        _run.Close(_faults);
        StopWaiting();
        _context.Ended(new JobOutcome(JobStatus.Failed, message) { ResumeFrom = resumeFrom });
        _outbox.Broadcast(new JobFinished(_runId, JobStatus.Failed, message, resumeFrom ?? ""));
        EndOfJob.DownUnreachableNodes(_cluster, _log);
        Become(() => ReceiveAny(_ => { }));
    }

    private bool FromWorker(object message, string workerId) =>
        Senders.FromWorker(Sender, Context.System, _log, message, workerId);

    private bool FromMember(object message) => Senders.FromMember(Sender, Context.System, _log, message);
}
