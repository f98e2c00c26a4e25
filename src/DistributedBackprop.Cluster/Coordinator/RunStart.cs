using Akka.Actor;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// Whether a coordinator that starts on this node runs the job: it opens the run folder, unless the job ends before it
/// starts here — the run had already finished (its summary is in the run folder), or the run folder cannot be written.
/// That is bad input when this node was just started with it (exit 2), and a fault when the coordinator took over from
/// another (every node is told the job failed, and exits 1 with the command that resumes it).
/// </summary>
public static class RunStart
{
    /// <summary>How the job ended before it started here, and what each node that registers is told (null: nothing).</summary>
    public sealed record Ended(JobOutcome Outcome, JobFinished? Told);

    /// <summary>The run folder's recorder, or null with <paramref name="ended"/> set.</summary>
    public static RunRecorder? Open(NodeContext context, string runId, Address self, ILoggingAdapter log, out Ended? ended)
    {
        var spec = context.Spec;
        ended = null;
        if (Resume.AlreadyFinished(spec) is { } weights)
        {
            log.Warning("the run in {0} has already finished (weights_sha256 {1}): nothing to do", spec.Outputs.RunDir, weights);
            ended = new Ended(new JobOutcome(JobStatus.Finished, "the run had already finished"),
                new JobFinished(runId, JobStatus.Finished, "training finished", ""));
            return null;
        }
        try
        {
            return RunRecorder.Open(spec);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && context.AcceptedByCoordinator)
        {
            var dir = spec.Outputs.RunDir!;
            var message = $"the coordinator moved to {self}, which cannot write the run folder '{dir}' ({e.Message})";
            log.Error(message);
            ended = new Ended(new JobOutcome(JobStatus.Failed, message) { ResumeFrom = dir },
                new JobFinished(runId, JobStatus.Failed, message, dir));
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var message = $"cannot write the run folder '{spec.Outputs.RunDir}' ({e.Message})";
            log.Error(message);
            ended = new Ended(new JobOutcome(JobStatus.Refused, message) { About = RefusedInput.RunFolder }, Told: null);
            return null;
        }
    }
}
