using System.Text.Json.Nodes;
using DistributedBackprop.Cluster.Telemetry;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// What the coordinator records as the run goes: after each applied step its timings, the faults it recovered from,
/// the step line in the run folder, the metrics, health warnings, progress for the observer and the checkpoints due on
/// the <see cref="RunSchedule"/> shared with the single-process trainer; after each evaluation the test figures; at the
/// end the result and the summary.
/// </summary>
public sealed class RunProgress(TrainingSetup setup, RunRecorder run, FaultLog faults, ITrainingObserver? observer)
{
    private readonly RunSchedule _schedule = new(setup);
    private double _lastLoss = double.NaN;
    private int _faultsAtStepStart;

    public StepTimings Timings { get; } = new();

    /// <summary>The newest test evaluation (NaN before the first).</summary>
    public Evaluation Test { get; private set; } = new(double.NaN, double.NaN, 0);

    /// <summary>A step starts: its clock runs, and a fault from now on makes it one that does not set the straggler deadline.</summary>
    public void BeginStep()
    {
        Timings.BeginStep();
        _faultsAtStepStart = faults.Records.Count;
    }

    /// <summary>
    /// Records step <paramref name="report"/>, applied to <paramref name="state"/> in <paramref name="applySeconds"/>
    /// with the sums of <paramref name="step"/>, and writes a checkpoint when one is due. True when it ended an epoch
    /// (the end-of-epoch health checks have then run; an evaluation is next).
    /// </summary>
    public bool Stepped(StepReport report, TrainingState state, double applySeconds, StepRound step, int workersAlive,
        out int epoch)
    {
        var wall = Timings.EndStep(applySeconds, faultFree: faults.Records.Count == _faultsAtStepStart);
        _lastLoss = report.Loss;
        foreach (var recovered in faults.StepCompleted())
        {
            run.Fault(recovered);
        }
        (epoch, var stepInEpoch) = setup.Plan.Locate(report.Step);
        var samplesPerSecond = Timings.SamplesPerSecond(setup.Options.Batch);
        run.Step(report, epoch, state, setup.Options.Batch, wall, Timings.StepCompute, applySeconds, workersAlive,
            step.SliceWorkers, step.Stragglers);
        TrainingMetrics.RecordStep(wall, samplesPerSecond, report.Loss, report.GradientNorm, report.Clipped);
        TrainingMetrics.SetWorkersAlive(workersAlive);
        if (report.Warning is not null)
        {
            observer?.OnWarning(report.Warning);
            run.Health(report.Warning, report.Step);
        }
        observer?.OnStep(report, epoch, stepInEpoch, setup.Plan.StepsPerEpoch, samplesPerSecond);
        var endOfEpoch = _schedule.EndsEpoch(stepInEpoch);
        if (setup.Options.CheckpointDir is { } dir && _schedule.CheckpointDue(state.Step, endOfEpoch))
        {
            run.Checkpoint(new CheckpointStore(dir).Save(setup, state), state.Step);
        }
        if (endOfEpoch)
        {
            foreach (var warning in state.Health.EndEpoch(epoch))
            {
                observer?.OnWarning(warning);
                run.Health(warning, report.Step);
            }
        }
        return endOfEpoch;
    }

    /// <summary>The held-out split was evaluated after the last step of <paramref name="epoch"/>.</summary>
    /// <summary>
    /// Whether the state after step <paramref name="step"/> (the next being <paramref name="next"/>) must be whole on the
    /// coordinator: a checkpoint is due, or it is the last step (the model is written from it).
    /// </summary>
    public bool NeedsState(long step, long next, long totalSteps)
    {
        if (next >= totalSteps)
        {
            return true;
        }
        var (_, stepInEpoch) = setup.Plan.Locate(step);
        return setup.Options.CheckpointDir is not null && _schedule.CheckpointDue(next, _schedule.EndsEpoch(stepInEpoch));
    }

    public void Evaluated(long step, int epoch, Evaluation test)
    {
        Test = test;
        run.Evaluation(step, epoch, test);
        observer?.OnEpoch(epoch, _lastLoss, test);
    }

    /// <summary>The result of the finished run, as the single-process trainer reports it.</summary>
    public TrainingResult Result(TrainingState state) =>
        _schedule.Result(state, Timings.StepsRun, Timings.TrainSeconds, _lastLoss, Test);

    /// <summary>
    /// The run is over: the model and the summary written (<see cref="RunOutputs"/>), the last line recorded, the run
    /// folder closed; the finished outcome. Throws what writing the outputs threw.
    /// </summary>
    public JobOutcome Finish(TrainingState state, ClusterView view, WorkAssignment work, int workers, long? resumedFrom,
        JobOutputs outputs)
    {
        var result = Result(state);
        var summary = Summary(result, view, work, workers, resumedFrom);
        RunOutputs.Write(setup, state, TrainingSummary.ToJson(summary), run.Files, outputs);
        run.Info("run-finished", $"training finished at step {state.Step}: test accuracy {Test.Accuracy:P2}, "
                                 + $"weights_sha256 {result.WeightsSha256}", state.Step);
        run.Close(faults);
        return new JobOutcome(JobStatus.Finished, "done", summary, result);
    }

    /// <summary>The summary: the single-process trainer's fields, and the cluster's (placement, faults, where time went).</summary>
    public JsonObject Summary(TrainingResult result, ClusterView view, WorkAssignment work, int workers, long? resumedFrom)
    {
        var extra = new JsonObject
        {
            ["bytes_per_step"] = Timings.BytesPerStep,
            ["bytes_per_node_per_step"] = Timings.BytesPerNodeToJson(),
            ["busiest_node_bytes_per_step"] = Timings.BusiestNodeBytesPerStep,
            ["placement"] = new JsonObject(view.Placement.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
            ["resumed_from_step"] = resumedFrom,
            ["excluded_workers"] = new JsonObject(work.Excluded.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
            ["faults"] = faults.ToJson(),
            ["step_seconds"] = Timings.ToJson(),
        };
        return TrainingSummary.Build(setup, result, workers, view.Members.Count, extra);
    }
}
