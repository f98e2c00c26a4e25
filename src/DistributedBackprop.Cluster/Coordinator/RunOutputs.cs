using DistributedBackprop.Core;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Runs;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>The trained model and the summary, written by the node that hosts the coordinator when the job ends.</summary>
public static class RunOutputs
{
    /// <summary>
    /// Into the run folder when there is one, and copied to the model and summary paths (the same bytes); without a run
    /// folder, straight to those paths.
    /// </summary>
    public static void Write(TrainingSetup setup, TrainingState state, string summaryJson, RunFiles? files, JobOutputs outputs)
    {
        var snapshot = CheckpointStore.Snapshot(setup, state, "model");
        if (files is not null)
        {
            ModelFile.Write(files.Model, snapshot);
            AtomicWrite.Text(files.Summary, summaryJson);
            if (outputs.ModelPath is { } modelCopy)
            {
                AtomicWrite.Copy(files.Model, modelCopy);
            }
            if (outputs.SummaryPath is { } summaryCopy)
            {
                AtomicWrite.Copy(files.Summary, summaryCopy);
            }
            return;
        }
        if (outputs.ModelPath is { } modelPath)
        {
            ModelFile.Write(modelPath, snapshot);
        }
        if (outputs.SummaryPath is { } summaryPath)
        {
            AtomicWrite.Text(summaryPath, summaryJson);
        }
    }
}
