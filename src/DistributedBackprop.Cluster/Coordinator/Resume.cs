using Akka.Event;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// Where a coordinator starts. A coordinator that starts after another (the singleton moved, or the job was started
/// again with a checkpoint folder that has checkpoints) resumes from the newest valid checkpoint and replays
/// deterministically; otherwise training starts at step 0.
/// </summary>
public static class Resume
{
    /// <summary>True when the checkpoint folder holds a checkpoint: the job goes on with the nodes it has.</summary>
    public static bool HasCheckpoint(TrainingOptions options) =>
        options.CheckpointDir is { } dir && new CheckpointStore(dir).List().Any();

    /// <summary>The newest valid checkpoint's state (recorded as a fault), or a new state.</summary>
    public static TrainingState RestoreOrStart(TrainingSetup setup, FaultLog faults, ILoggingAdapter log, string node,
        out long? resumedFrom)
    {
        resumedFrom = null;
        if (setup.Options.CheckpointDir is not { } dir
            || new CheckpointStore(dir).RestoreNewestValid(setup, w => log.Warning(w)) is not { } restored)
        {
            return setup.NewState();
        }
        resumedFrom = restored.Step;
        faults.Add("resumed-from-checkpoint", restored.Step, dir,
            $"a coordinator incarnation resumed at step {restored.Step} and replays deterministically", node: node);
        log.Warning("resuming from the checkpoint at step {0} in {1}", restored.Step, dir);
        return restored;
    }
}
