namespace DistributedBackprop.Core.Training;

/// <summary>
/// The run's cadence — which step ends an epoch (the health review and an evaluation follow it), when a checkpoint is
/// due, and the result at the end — one rule for the single-process trainer and the coordinator, so the oracle and the
/// cluster cannot drift apart.
/// </summary>
public sealed class RunSchedule(TrainingSetup setup)
{
    /// <summary>True when the step at <paramref name="stepInEpoch"/> is its epoch's last.</summary>
    public bool EndsEpoch(int stepInEpoch) => stepInEpoch == setup.Plan.StepsPerEpoch - 1;

    /// <summary>
    /// Whether a checkpoint is due once the state has reached <paramref name="stepsDone"/>: every
    /// <see cref="TrainingOptions.CheckpointEvery"/> steps, or at the end of each epoch when that is 0.
    /// </summary>
    public bool CheckpointDue(long stepsDone, bool endsEpoch) =>
        setup.Options.CheckpointEvery > 0 ? stepsDone % setup.Options.CheckpointEvery == 0 : endsEpoch;

    /// <summary>The run's result from what its loop measured.</summary>
    public TrainingResult Result(TrainingState state, long stepsRun, double trainSeconds, double lastLoss, Evaluation test) =>
        new(state.Step, stepsRun, trainSeconds, stepsRun * setup.Options.Batch / Math.Max(trainSeconds, 1e-9), lastLoss, test,
            state.Weights.Sha256(), state.Health.Report());
}

/// <summary>
/// How many weights versions live at once, one setting for the two places that keep them: each node's cache, and the
/// coordinator's ring of published buffers (which must outnumber the caches' so a buffer is never rewritten while a cache
/// still serves it: one more being written, one more in flight).
/// </summary>
public static class WeightsRetention
{
    /// <summary>Versions each node's cache keeps: a straggler's job may still ask for one a few steps old.</summary>
    public const int CachedVersions = 3;

    /// <summary>Buffers in the coordinator's ring of published versions.</summary>
    public const int PublishedVersions = CachedVersions + 2;
}
