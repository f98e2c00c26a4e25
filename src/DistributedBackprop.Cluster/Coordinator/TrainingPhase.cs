using System.Diagnostics;
using Akka.Actor;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// Training, without the actor: one step after the other (a <see cref="StepRound"/> collects each), the step applied
/// when its tree is complete with the same <see cref="TrainingState"/> as the single-process trainer, the new weights
/// version published to every node, and after each epoch an evaluation of the held-out split (<see cref="EvaluationRound"/>).
/// Each method that can end a stage says so; the actor then starts a new wait (<see cref="Nudge"/> speculates on
/// stragglers in a step, re-sends missing chunks in an evaluation) or, when <see cref="Stage.Done"/>, finishes the job.
/// </summary>
public sealed class TrainingPhase(TrainingSetup setup, TrainingState state, StepRound round, RunProgress progress,
    PublishedWeights published, WorkAssignment work, ClusterView view, Membership membership, RunRecorder run,
    CoordinatorOutbox outbox, PhaseWait wait, CoordinatorTuning tuning, ShardedAggregation? sharded = null)
{
    /// <summary>
    /// Step: results come in. Reduction and Snapshot (sharded aggregation only): the owners complete their ranges' trees,
    /// and send their ranges' state for a checkpoint or the end. Evaluation: the held-out chunks come in.
    /// </summary>
    public enum Stage { Step, Reduction, Snapshot, Evaluation, Done }

    /// <summary>Re-sends of a reduction before its step is computed again (its pieces are then taken to be lost).</summary>
    private const int RedoAfterNudges = 2;

    private EvaluationRound? _evaluation;
    private int _reductionNudges;
    private StepReport _applied;
    private Stopwatch _applyClock = new();
    private bool _tailTimed;
    private TimeSpan _stragglerDelay;
    private bool _replan;
    private int _viewChecked = -1;

    public Stage Current { get; private set; } = Stage.Step;

    public TrainingState State => state;

    public RunProgress Progress => progress;

    /// <summary>Publishes the first version and starts the first step (<see cref="Stage.Done"/> when none is left).</summary>
    public Stage Start()
    {
        if (sharded is not null)
        {
            // The owners publish the first version, each its range.
            sharded.Timings = progress.Timings;
            StartPlan();
        }
        else
        {
            outbox.WeightsToAll(published.Publish(state.Step, state.Weights, parametersWritten: false));
        }
        return NextStep();
    }

    /// <summary>The weights version the current step computes with (a version is named by the step that starts from it).</summary>
    private long Version => sharded is not null ? state.Step : published.Current!.Version;

    /// <summary>Sharded: a cache's request for a version goes to the range owners, each of which sends it its range.</summary>
    public void ForwardPull(PullWeights pull, Akka.Actor.IActorRef cache) => sharded?.ForwardPull(pull, cache);

    /// <summary>True when <paramref name="node"/> owns a range (sharded aggregation): losing it loses optimizer state.</summary>
    public bool OwnsRange(Akka.Actor.Address node) => sharded?.Owns(node) == true;

    /// <summary>What the current stage waits for, for the message when the wait gives up.</summary>
    public string Waiting => Current switch
    {
        Stage.Evaluation => $"evaluation after step {state.Step}",
        Stage.Reduction => $"the range owners' reduction of step {state.Step}",
        Stage.Snapshot => $"the range owners' state at step {state.Step}",
        _ => $"step {state.Step}",
    };

    /// <summary>
    /// When the first nudge of the current stage is due: a step's stragglers are waited for as long as steps usually
    /// take (see <see cref="StepTimings.StragglerDelay"/>); an evaluation re-sends after the usual time.
    /// </summary>
    public TimeSpan FirstNudge => Current == Stage.Step ? _stragglerDelay : tuning.ResendAfter;

    /// <summary>Speculates on a step's stragglers, or re-sends an evaluation's missing chunks.</summary>
    public void Nudge()
    {
        if (Current == Stage.Step)
        {
            outbox.Compute(round.Speculate(DateTime.UtcNow), round.Step, Version);
            sharded?.NudgeOwners();
        }
        else if (Current == Stage.Reduction && ++_reductionNudges < RedoAfterNudges)
        {
            sharded!.NudgeReduce();
        }
        else if (Current == Stage.Snapshot)
        {
            sharded!.NudgeSnapshot();
        }
        else if (Current == Stage.Reduction)
        {
            // An owner still misses a piece: it was lost (a node restarted, a connection cut, a sender not yet a member
            // there). The step is computed again; its sums are the same bits whoever computes them.
            run.Info("step-redone", $"the range owners still miss pieces of step {state.Step}; computing it again", state.Step);
            _reductionNudges = 0;
            round.Reset();
            Current = Stage.Step;
            outbox.Compute(round.Begin(state.Step, Version, DateTime.UtcNow, view.PlacementOf), state.Step, Version);
        }
        else if (Current == Stage.Evaluation)
        {
            outbox.Evaluate(work.Spread(_evaluation!.Missing), _evaluation.Version);
        }
    }

    /// <summary>Lost workers' slices go to live workers at once (in an evaluation, the re-send covers their chunks).</summary>
    public void WorkersLost(IEnumerable<string> workers)
    {
        foreach (var worker in workers.Where(_ => Current == Stage.Step))
        {
            outbox.Compute(round.WorkerLost(worker), round.Step, Version);
        }
    }

    /// <summary>
    /// A step's result from its worker (the actor checked the sender): into the tree, dropped, or sent to be recomputed.
    /// True when it completed the step, which was applied: <see cref="Current"/> says what comes next.
    /// </summary>
    public bool Take(SliceResult result, IActorRef sender)
    {
        var intake = round.Take(result, DateTime.UtcNow);
        if (intake.ExcludedAfter is { } strikes)
        {
            run.WorkerExcluded(result.WorkerId, round.Step, $"returned non-finite gradients {strikes} times");
            membership.Snapshot(state.Step);
        }
        outbox.Compute(intake.Recompute, round.Step, Version);
        if (!intake.Taken)
        {
            return false;
        }
        wait.Progressed(DateTime.UtcNow);
        outbox.Received(sender, result.Sum.Length);
        progress.Timings.Computed(result.ComputeSeconds);
        if (!intake.Complete)
        {
            return false;
        }
        Apply();
        return true;
    }

    /// <summary>
    /// Once half of the step's slices are in (the first time in the step): when the rest should get copies —
    /// <see cref="CoordinatorTuning.StragglerFactor"/> × the time the first half took, at least
    /// <see cref="CoordinatorTuning.MinTailDelay"/> — if that is sooner than the step's straggler deadline; else null.
    /// </summary>
    public TimeSpan? TailDeadline()
    {
        if (Current != Stage.Step || _tailTimed || 2 * round.CoveredSlices < setup.Options.Slices)
        {
            return null;
        }
        _tailTimed = true;
        var elapsed = progress.Timings.SinceStepStart;
        var tail = TimeSpan.FromSeconds(tuning.StragglerFactor * elapsed.TotalSeconds);
        tail = tail < tuning.MinTailDelay ? tuning.MinTailDelay : tail;
        return tail < _stragglerDelay - elapsed ? tail : null;
    }

    /// <summary>True for an evaluation result that is awaited now.</summary>
    public bool AwaitsEvaluation(long version, int chunk) =>
        Current == Stage.Evaluation && _evaluation!.IsAwaited(version, chunk);

    /// <summary>Takes an awaited evaluation chunk; true when it was the last, and the next step started.</summary>
    public bool Evaluated(EvaluationResult result)
    {
        wait.Progressed(DateTime.UtcNow);
        if (_evaluation!.Add(result.Chunk, result.LossSum, result.Correct) is not { } test)
        {
            return false;
        }
        progress.Evaluated(state.Step - 1, _evaluation.Epoch, test);
        NextStep();
        return true;
    }

    /// <summary>The job gives up: the state saved in the checkpoint folder, if it has one; the folder, to resume from.</summary>
    public string? Checkpoint()
    {
        if (setup.Options.CheckpointDir is not { } dir)
        {
            return null;
        }
        if (sharded is not null)
        {
            // The parameters and optimizer state are with the owners: the newest checkpoint written is where to resume.
            return Resume.HasCheckpoint(setup.Options) ? dir : null;
        }
        run.Checkpoint(new CheckpointStore(dir).Save(setup, state), state.Step);
        return dir;
    }

    /// <summary>An owner's reduction of the current step; true when it was the last and the step moved on.</summary>
    public bool Reduced(RangeReduced reduced, Akka.Actor.Address from)
    {
        if (Current != Stage.Reduction || !sharded!.Reduced(reduced, from, state.Step))
        {
            return false;
        }
        wait.Progressed(DateTime.UtcNow);
        _applied = sharded.Decide(state).Report;
        round.Reset();
        if (view.Revision != _viewChecked)
        {
            // Membership changed since the last check (the plan only changes here or on a restart, which checks anew).
            _viewChecked = view.Revision;
            var nodes = view.RangeNodes.ToList();
            _replan = state.Step < setup.TotalSteps && nodes.Count > 0
                      && (sharded.HasNodeWithoutRange(nodes) || sharded.HasOwnerIn(view.Leaving));
        }
        if (_replan || progress.NeedsState(_applied.Step, state.Step, setup.TotalSteps))
        {
            sharded.RequestSnapshot(state.Step);
            Current = Stage.Snapshot;
            return true;
        }
        Stepped();
        return true;
    }

    /// <summary>An owner's range state; true when it was the last, the state is whole here, and the step moved on.</summary>
    public bool Snapshot(RangeSnapshot snapshot, Akka.Actor.Address from)
    {
        if (Current != Stage.Snapshot || !sharded!.Snapshot(snapshot, from, state))
        {
            return false;
        }
        wait.Progressed(DateTime.UtcNow);
        if (_replan)
        {
            // The state is whole here now: cut the ranges again over the nodes there are (a node joined, or one is leaving).
            _replan = false;
            var owners = sharded.OwnerNodes.Count;
            StartPlan();
            run.Info("ranges-moved", $"the ranges are cut again over {sharded.OwnerNodes.Count} nodes (were {owners}) from step {state.Step}: a node joined or is leaving", state.Step);
        }
        Stepped();
        return true;
    }

    /// <summary>
    /// Sharded: the ranges cut over the nodes that can own one, each owner given its range's state at the current step;
    /// the work from now on names the new plan (its versions replace the old plan's in every cache).
    /// </summary>
    private void StartPlan()
    {
        sharded!.Start(state, view.RangeNodes);
        outbox.Generation = sharded.Plan!.Generation;
    }

    private void Apply()
    {
        _applyClock = Stopwatch.StartNew();
        if (sharded is not null)
        {
            sharded.Reduce(round.Step, round.Shipped);
            _reductionNudges = 0;
            Current = Stage.Reduction;
            return;
        }
        // The optimizer writes the new parameters into the next version's buffer as it updates them.
        _applied = state.Apply(round.Tree.Root, setup.Options.Batch, setup.Options.Slices,
            published.ParametersOf(state.Step + 1, state.Weights));
        round.Reset();
        outbox.WeightsToAll(published.Publish(state.Step, state.Weights, parametersWritten: true));
        Stepped();
    }

    /// <summary>The step is applied: its report, then an evaluation after an epoch, or the next step.</summary>
    private void Stepped()
    {
        var report = _applied;
        if (progress.Stepped(report, state, _applyClock.Elapsed.TotalSeconds, round, work.Alive.Count, out var epoch))
        {
            Current = Stage.Evaluation;
            _evaluation = new EvaluationRound(setup.Data.Test.Count, sharded is not null ? state.Step : published.Current!.Version, epoch);
            outbox.Evaluate(work.Spread(_evaluation.Missing), _evaluation.Version);
            return;
        }
        NextStep();
    }

    private Stage NextStep()
    {
        if (state.Step >= setup.TotalSteps)
        {
            return Current = Stage.Done;
        }
        progress.BeginStep();
        _tailTimed = false;
        _stragglerDelay = progress.Timings.StragglerDelay(tuning);
        var version = Version;
        outbox.Compute(round.Begin(state.Step, version, DateTime.UtcNow, view.PlacementOf), state.Step, version);
        return Current = Stage.Step;
    }
}
