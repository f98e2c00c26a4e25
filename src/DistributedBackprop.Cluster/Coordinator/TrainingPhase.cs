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
    CoordinatorOutbox outbox, PhaseWait wait, CoordinatorTuning tuning)
{
    public enum Stage { Step, Evaluation, Done }

    private EvaluationRound? _evaluation;
    private bool _tailTimed;
    private TimeSpan _stragglerDelay;

    public Stage Current { get; private set; } = Stage.Step;

    public TrainingState State => state;

    public RunProgress Progress => progress;

    /// <summary>Publishes the first version and starts the first step (<see cref="Stage.Done"/> when none is left).</summary>
    public Stage Start()
    {
        outbox.WeightsToAll(published.Publish(state.Step, state.Weights, parametersWritten: false));
        return NextStep();
    }

    /// <summary>What the current stage waits for, for the message when the wait gives up.</summary>
    public string Waiting => Current == Stage.Evaluation ? $"evaluation after step {state.Step}" : $"step {state.Step}";

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
            outbox.Compute(round.Speculate(DateTime.UtcNow), round.Step, published.Current!.Version);
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
            outbox.Compute(round.WorkerLost(worker), round.Step, published.Current!.Version);
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
        outbox.Compute(intake.Recompute, round.Step, published.Current!.Version);
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
        run.Checkpoint(new CheckpointStore(dir).Save(setup, state), state.Step);
        return dir;
    }

    private void Apply()
    {
        var applyClock = Stopwatch.StartNew();
        // The optimizer writes the new parameters into the next version's buffer as it updates them.
        var report = state.Apply(round.Tree.Root, setup.Options.Batch, setup.Options.Slices,
            published.ParametersOf(state.Step + 1, state.Weights));
        round.Tree.Reset();
        outbox.WeightsToAll(published.Publish(state.Step, state.Weights, parametersWritten: true));
        if (progress.Stepped(report, state, applyClock.Elapsed.TotalSeconds, round, work.Alive.Count, out var epoch))
        {
            Current = Stage.Evaluation;
            _evaluation = new EvaluationRound(setup.Data.Test.Count, published.Current!.Version, epoch);
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
        var version = published.Current!.Version;
        outbox.Compute(round.Begin(state.Step, version, DateTime.UtcNow, view.PlacementOf), state.Step, version);
        return Current = Stage.Step;
    }
}
