using System.Text.Json;
using System.Text.Json.Nodes;
using Akka.Event;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Runs;
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

    /// <summary>
    /// The weights_sha256 of this job when its run folder already holds its summary: the job finished, and a coordinator
    /// that starts after that (a node of a Kubernetes Job restarted as the job ended, which found no one and founded a
    /// cluster of its own) has nothing to do. Null otherwise, or for a summary that cannot be read or is another run's.
    /// Only for <c>node</c>: <c>train</c> and <c>simulate</c> refuse a run folder that holds a run unless resumed.
    /// </summary>
    public static string? AlreadyFinished(JobSpec spec)
    {
        if (spec.Outputs.Command != "node" || spec.Outputs.RunDir is not { } dir)
        {
            return null;
        }
        try
        {
            var summary = new RunFiles(dir).Summary;
            return File.Exists(summary) && JsonNode.Parse(File.ReadAllText(summary)) is JsonObject json
                   && json["config_hash"] is JsonValue hash && hash.TryGetValue<string>(out var text) && text == spec.ConfigHash
                   && json["weights_sha256"] is JsonValue sha && sha.TryGetValue<string>(out var weights)
                ? weights
                : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

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
