using DistributedBackprop.Cluster;
using DistributedBackprop.Core;

namespace DistributedBackprop.Node.Commands;

/// <summary>How the command line words a job's outcome, and the exit code it gives for it.</summary>
internal static class JobOutcomes
{
    /// <summary>The outcome's message, naming the flag a refusal was about and the command that resumes a failed job.</summary>
    public static string Describe(JobOutcome outcome) => outcome switch
    {
        { About: RefusedInput.RunFolder } => $"--run-dir: {outcome.Message}; give a writable folder.",
        { ResumeFrom: { } dir } => $"{outcome.Message}; resume with: distbp simulate --resume {dir} (or distbp train --resume {dir})",
        _ => outcome.Message,
    };

    /// <summary>
    /// A job that ended without a result on this node: a refusal is bad input (one line, exit 2); a failure — or a status
    /// this build does not know — prints "training failed" and gives exit 1; a job finished elsewhere gives 0.
    /// </summary>
    public static int Ended(JobOutcome outcome, TextWriter errors)
    {
        switch (outcome.Status)
        {
            case JobStatus.Refused:
                throw new DistbpInputException(Describe(outcome));
            case JobStatus.Finished:
                return 0;
            default:
                errors.WriteLine($"distbp: training failed: {Describe(outcome)}");
                return 1;
        }
    }
}
