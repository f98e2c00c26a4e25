using System.Text.Json.Nodes;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster;

/// <summary>How a job ended. The host words it for its user and picks the exit code; the cluster only says what happened.</summary>
public enum JobStatus
{
    /// <summary>Trained to the last step; the outputs are written.</summary>
    Finished = 0,

    /// <summary>
    /// Stopped by something it could not get past: no progress within the bounded wait, a worker out of memory, outputs
    /// that could not be written, this node downed.
    /// </summary>
    Failed = 1,

    /// <summary>Not started because of what its user gave it: see <see cref="JobOutcome.About"/>.</summary>
    Refused = 2,
}

/// <summary>What a refused job was refused for, so that the host can name the input and its fix.</summary>
public enum RefusedInput
{
    /// <summary>This node's training options differ from the coordinator's.</summary>
    TrainingOptions,

    /// <summary>The run folder cannot be written.</summary>
    RunFolder,
}

/// <summary>How a job ended, as the node that hosted the coordinator saw it (or as it was told).</summary>
public sealed record JobOutcome(JobStatus Status, string Message, JsonObject? Summary = null, TrainingResult? Result = null)
{
    /// <summary>For a failed job that checkpointed before it stopped: the checkpoint folder it can resume from.</summary>
    public string? ResumeFrom { get; init; }

    /// <summary>For a refused job: what was refused.</summary>
    public RefusedInput? About { get; init; }
}
