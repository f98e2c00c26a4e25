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
    private readonly FaultLog _faults;
    private readonly PhaseWait _wait = new();
    private readonly PublishedWeights _published;
    private RunRecorder _run = RunRecorder.None;
    private Membership _membership = null!; // made in PreStart, with the run folder
    private Preparation _preparation = null!; // made in PreStart, with the run folder

    // Known once this node's cache has built the setup.
    private TrainingPhase? _training;
    private StepRound? _round;
    private long? _resumedFrom;

    /// <param name="context">The job and this node's shared resources.</param>
    /// <param name="workers">The worker entities' shard region.</param>
    /// <param name="localCache">This node's weights cache, which builds the node's setup from the normaliser.</param>
    public TrainingCoordinator(NodeContext context, IActorRef workers, IActorRef localCache)
    {
        _context = context;
        _spec = context.Spec;
        _faults = context.Faults;
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
        Become(Preparing);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Fires while a phase waits: speculate on stragglers, re-send what is missing, give up after the bounded wait.</summary>
    private sealed record Tick(int Phase);

    private sealed class DownAfterTheEnd
    {
        public static readonly DownAfterTheEnd Instance = new();
    }

    private long Step => _training?.State.Step ?? 0;

    protected override void PreStart()
    {
        if (_context.HasEnded)
        {
            // A singleton that moves here while the cluster is shutting down after the job must not start it again.
            Become(() => ReceiveAny(_ => { }));
            return;
        }
        if (RunStart.Open(_context, _runId, _cluster.SelfAddress, _log, out var ended) is not { } run)
        {
            EndAtOnce(ended!);
            return;
        }
        _run = run;
        _membership = new Membership(_view, _work, _faults, _run, _workerIds.Length, _spec.WorkersPerNode, _runId, _spec.ConfigHash, _log);
        _preparation = new Preparation(_spec, _workerIds, _view, _membership, _work, _outbox, _localCache,
            // A coordinator that took over goes on with the nodes it has, checkpoint or not: one that waited for
            // --min-nodes when the first checkpoint was not written yet hung for good after a node had left the job.
            resuming: Resume.HasCheckpoint(_spec.Options) || _context.AcceptedByCoordinator);
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.MemberUp), typeof(ClusterEvent.MemberRemoved), typeof(ClusterEvent.UnreachableMember),
            typeof(ClusterEvent.ReachableMember), typeof(ClusterEvent.MemberLeft), typeof(ClusterEvent.MemberExited));
    }

    /// <summary>The job ends before it starts here; every node agent that registers (each does, every 500 ms) is told how.</summary>
    private void EndAtOnce(RunStart.Ended ended)
    {
        _context.Ended(ended.Outcome);
        Become(() =>
        {
            Receive<RegisterNode>(node =>
            {
                if (ended.Told is { } told && FromMember(node))
                {
                    Sender.Tell(told);
                }
            });
            ReceiveAny(_ => { });
        });
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
        // A node that leaves gracefully still answers until it is removed: with sharded aggregation its range moves then.
        Receive<ClusterEvent.MemberLeft>(e => _view.Left(e.Member.Address));
        Receive<ClusterEvent.MemberExited>(e => _view.Left(e.Member.Address));
        Receive<ClusterEvent.MemberRemoved>(removed =>
        {
            if (_training?.OwnsRange(removed.Member.Address) == true && !_context.HasEnded)
            {
                // Its range's optimizer state went with it: start again from the newest checkpoint (the singleton
                // manager restarts this actor; PreStart resumes as a coordinator that took over does).
                _faults.Add("owner-lost", Step, removed.Member.Address.ToString(),
                    "a range owner's node was removed; the coordinator starts again from the newest checkpoint");
                _run.Info("owner-lost", $"range owner {removed.Member.Address} removed at step {Step}; restarting from the newest checkpoint", Step);
                throw new OwnerLostException(removed.Member.Address.ToString());
            }
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
            else if (pull.RunId == _runId && _training is not null)
            {
                // Sharded: a cache that knows no plan yet (its node joined after the version was published) asks here;
                // the owners, which keep their last versions, answer it.
                _training.ForwardPull(pull, Sender);
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
        if (_preparation.Normaliser is { } normaliser)
        {
            _outbox.Normaliser(cache, normaliser);
        }
        if (_published.Current is { } current)
        {
            _outbox.Weights(cache, current);
        }
        RequestRegionsWhenEnoughNodes();
    }

    private void OnRegisterNode(RegisterNode node)
    {
        // The node is the one the registration came from (its agent), and must be a member.
        if (!FromMember(node))
        {
            return;
        }
        Sender.Tell(_membership.Register(Senders.NodeOf(Sender, Context.System), node.ConfigHash, out var newlyAccepted));
        if (newlyAccepted && _training is not null)
        {
            GrowWhenRegionsKnown(attempt: 0);
        }
        else if (newlyAccepted)
        {
            RequestRegionsWhenEnoughNodes();
        }
    }

    /// <summary>Asks for the shard regions; the workers a joining node brings start once its region is among them.</summary>
    private sealed record Grow(int Attempt);

    private void GrowWhenRegionsKnown(int attempt)
    {
        if (_membership.WantsMore)
        {
            _workers.Ask<CurrentRegions>(GetCurrentRegions.Instance, TimeSpan.FromSeconds(5))
                .PipeTo(Self, success: regions => (regions, attempt), failure: _ => new Grow(attempt + 1));
        }
    }

    /// <summary>
    /// A node that joined (or the nodes beyond --min-nodes at the start) gets its workers when every accepted node's
    /// region is known (a new worker's shard goes to the region with the fewest, the new node's); after 2 s of asking,
    /// they start anyway (somewhere: a slice's sum is the same wherever it is computed).
    /// </summary>
    private void OnRegions(CurrentRegions regions, int attempt)
    {
        if (regions.Regions.Count < _view.AcceptedMembers && attempt < 10)
        {
            Timers.StartSingleTimer("grow", new Grow(attempt + 1), TimeSpan.FromMilliseconds(200));
            return;
        }
        foreach (var worker in _membership.WorkersToStart())
        {
            _log.Info("starting {0}: {1} accepted nodes want {2} workers", worker, _view.AcceptedMembers, _membership.Wanted);
            _outbox.StartWorker(worker);
        }
    }

    /// <summary>With enough nodes, the workers start once every node's shard region is known.</summary>
    private void RequestRegionsWhenEnoughNodes()
    {
        if (_preparation.EnoughNodes)
        {
            _workers.Tell(GetCurrentRegions.Instance, Self);
        }
    }

    /// <summary>Lost workers' slices go to live workers at once (in a step; in other phases there is nothing to move).</summary>
    private void WorkersLost(IReadOnlyList<string> workers) => _training?.WorkersLost(workers);

    // ---- before training: members, the workers, the feature statistics, this node's setup (see Preparation) ----

    private void Preparing()
    {
        Receive<WorkerStarted>(s => s.RunId == _runId && _preparation.Current == Preparation.Stage.StartingWorkers, started =>
        {
            if (_preparation.WorkerStarted(started))
            {
                _log.Info("run {0}: {1} members, {2} workers", _runId, _view.Members.Count, _workerIds.Length);
                StartWaiting(_preparation.Nudge, () => _preparation.Waiting);
            }
        });
        Common();
        Receive<CurrentRegions>(regions =>
        {
            if (_preparation.RegionsKnown(regions.Regions.Count))
            {
                StartWaiting(_preparation.Nudge, () => _preparation.Waiting);
            }
            else if (_preparation.Current == Preparation.Stage.WaitingForMembers)
            {
                Timers.StartSingleTimer("regions", GetCurrentRegions.Instance, TimeSpan.FromMilliseconds(200));
            }
        });
        Receive<GetCurrentRegions>(ask => _workers.Tell(ask, Self));
        Receive<StatisticsResult>(r => r.RunId == _runId && _preparation.AwaitsStatistics(r.Chunk) && FromMember(r), result =>
        {
            if (!_preparation.HasShape(result))
            {
                Senders.Drop(_log, result, Sender, $"statistics of chunk {result.Chunk} with the wrong shape");
                return;
            }
            _wait.Progressed(DateTime.UtcNow);
            if (_preparation.Statistics(result) is not null)
            {
                StartWaiting(_preparation.Nudge, () => _preparation.Waiting);
            }
        });
        // SetupReady is a local message (it holds this node's data): only this process can send it.
        Receive<SetupReady>(_ => _preparation.Current == Preparation.Stage.Setup, ready => StartTraining(ready.Setup));
        ReceiveAny(message => _log.Debug("coordinator preparing ignores {0}", message.GetType().Name));
    }

    private void StartTraining(TrainingSetup setup)
    {
        var state = Resume.RestoreOrStart(setup, _faults, _log, _cluster.SelfAddress.ToString(), out _resumedFrom);
        var progress = new RunProgress(setup, _run, _faults, _context.Progress);
        _outbox.Timings = progress.Timings;
        _round = new StepRound(_runId, setup, _work, _verifier, _faults, _context.Pool, _log);
        var sharded = _spec.Options.Aggregation == "sharded"
            ? new ShardedAggregation(_runId, setup, TensorTransport.For(Context.System), Context.System, Self)
            : null;
        _training = new TrainingPhase(setup, state, _round, progress, _published, _work, _view, _membership, _run, _outbox,
            _wait, _spec.Tuning, sharded);
        _run.Info("run-started", $"training steps {state.Step}..{setup.TotalSteps - 1}: {_workerIds.Length} workers, "
                                 + $"nodes {_view.Members.Count}, coordinator on {_cluster.SelfAddress}", state.Step);
        Become(Training);
        GrowWhenRegionsKnown(attempt: 0);
        NextStage(_training.Start());
    }

    // ---- training: steps, and an evaluation after each epoch (see TrainingPhase) ----

    private void Training()
    {
        Receive<SliceResult>(_ => _training!.Current == TrainingPhase.Stage.Step, result =>
        {
            if (!FromWorker(result, result.WorkerId))
            {
                return;
            }
            if (_training!.Take(result, Sender))
            {
                NextStage(_training.Current);
            }
            else if (_training.TailDeadline() is { } tail)
            {
                Timers.StartSingleTimer("tick", new Tick(_wait.Current), tail);
            }
        });
        Receive<RangeReduced>(reduced =>
        {
            if (FromMember(reduced) && _training!.Reduced(reduced, Senders.NodeOf(Sender, Context.System)))
            {
                NextStage(_training.Current);
            }
        });
        Receive<RangeSnapshot>(snapshot =>
        {
            if (FromMember(snapshot) && _training!.Snapshot(snapshot, Senders.NodeOf(Sender, Context.System)))
            {
                NextStage(_training.Current);
            }
        });
        Common();
        Receive<Grow>(grow => GrowWhenRegionsKnown(grow.Attempt));
        Receive<(CurrentRegions Regions, int Attempt)>(known => OnRegions(known.Regions, known.Attempt));
        Receive<EvaluationResult>(
            r => r.RunId == _runId && _training!.AwaitsEvaluation(r.Version, r.Chunk) && FromMember(r),
            result =>
            {
                if (_training!.Evaluated(result))
                {
                    NextStage(_training.Current);
                }
            });
        ReceiveAny(_ => { });
    }

    /// <summary>A new stage waits with its own deadline; with no step left, the job is done.</summary>
    private void NextStage(TrainingPhase.Stage stage)
    {
        if (stage == TrainingPhase.Stage.Done)
        {
            Finish();
            return;
        }
        var training = _training!;
        StartWaiting(training.Nudge, () => training.Waiting, training.FirstNudge);
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
        var message = $"no progress on {what} for {_spec.Tuning.WorkerWait.TotalSeconds:F0} s with {_work.Alive.Count} of {_work.All.Count} workers alive";
        var resumeFrom = _training?.Checkpoint();
        if (resumeFrom is not null)
        {
            message += $"; checkpointed step {Step} in {resumeFrom}";
        }
        Fail(message, resumeFrom);
    }

    // ---- the end ----

    private void Finish()
    {
        StopWaiting();
        try
        {
            _context.Ended(_training!.Progress.Finish(_training.State, _view, _work, _work.All.Count, _resumedFrom, _spec.Outputs));
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
