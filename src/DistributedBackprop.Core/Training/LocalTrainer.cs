using System.Diagnostics;
using DistributedBackprop.Core.Model;

namespace DistributedBackprop.Core.Training;

/// <summary>Hears about progress; the command line draws a progress bar from it.</summary>
public interface ITrainingObserver
{
    void OnStep(StepReport report, int epoch, int stepInEpoch, int stepsPerEpoch, double samplesPerSecond);
    void OnEpoch(int epoch, double trainLoss, Evaluation test);
    void OnWarning(Health.HealthWarning warning);
}

/// <summary>
/// The single-process trainer: one worker whose slices run in parallel on its threads, each thread reducing its
/// contiguous run of slices along the canonical tree, the coordinator's step applied by <see cref="TrainingState"/>.
/// It is the bit-exact oracle for the cluster: same options, same <c>weights_sha256</c>, whatever the thread count.
/// </summary>
public sealed class LocalTrainer
{
    private readonly TrainingSetup _setup;
    private readonly TrainingState _state;
    private readonly SliceRunner _runner;
    private readonly GradientTreeReducer _reducer;
    private readonly RunSchedule _schedule;

    public LocalTrainer(TrainingSetup setup, TrainingState? state = null)
    {
        _setup = setup;
        _state = state ?? setup.NewState();
        var pool = BufferPool.ForSlices(setup.Network.ResultLength, setup.Options.Slices);
        _runner = new SliceRunner(setup.Network, setup.Plan.SliceSize, setup.Options.Slices, setup.Options.Threads, pool);
        _reducer = new GradientTreeReducer(setup.Options.Slices, pool);
        _schedule = new RunSchedule(setup);
    }

    public TrainingState State => _state;

    /// <summary>Runs from the state's current step to the end; checkpoints through <paramref name="checkpoint"/>.</summary>
    public TrainingResult Run(ITrainingObserver? observer = null, Action<TrainingState>? checkpoint = null,
        CancellationToken cancel = default)
    {
        var options = _setup.Options;
        var plan = _setup.Plan;
        var network = _setup.Network;
        var trainSeconds = 0.0;
        var stepsRun = 0L;
        var lastLoss = double.NaN;
        var test = new Evaluation(double.NaN, double.NaN, 0);
        var clock = new Stopwatch();
        while (_state.Step < _setup.TotalSteps)
        {
            cancel.ThrowIfCancellationRequested();
            var step = _state.Step;
            var (epoch, stepInEpoch) = plan.Locate(step);
            clock.Restart();
            var sum = ComputeStep(step, plan.Permutation(epoch), stepInEpoch);
            var report = _state.Apply(sum, options.Batch, options.Slices);
            _reducer.Reset();
            trainSeconds += clock.Elapsed.TotalSeconds;
            stepsRun++;
            lastLoss = report.Loss;
            if (report.Warning is not null)
            {
                observer?.OnWarning(report.Warning);
            }
            observer?.OnStep(report, epoch, stepInEpoch, plan.StepsPerEpoch, stepsRun * options.Batch / trainSeconds);

            var endOfEpoch = _schedule.EndsEpoch(stepInEpoch);
            if (checkpoint is not null && _schedule.CheckpointDue(_state.Step, endOfEpoch))
            {
                checkpoint(_state);
            }
            if (endOfEpoch)
            {
                foreach (var warning in _state.Health.EndEpoch(epoch))
                {
                    observer?.OnWarning(warning);
                }
                test = Evaluator.Evaluate(network, _state.Weights, _setup.Data.Test, options.Threads);
                observer?.OnEpoch(epoch, report.Loss, test);
            }
        }
        if (test.Count == 0)
        {
            test = Evaluator.Evaluate(network, _state.Weights, _setup.Data.Test, options.Threads);
        }
        return _schedule.Result(_state, stepsRun, trainSeconds, lastLoss, test);
    }

    /// <summary>Every slice of one step, in parallel over the threads, reduced along the canonical tree.</summary>
    private float[] ComputeStep(long step, int[] permutation, int stepInEpoch)
    {
        var options = _setup.Options;
        var batch = permutation.AsMemory(stepInEpoch * options.Batch, options.Batch);
        foreach (var (node, sum) in _runner.Run(_state.Weights, _setup.Data.Train, batch, options.Seed, step, 0,
                     options.Slices))
        {
            _reducer.Add(node, sum);
        }
        return _reducer.Root;
    }
}

public sealed record TrainingResult(long Steps, long StepsRun, double TrainSeconds, double SamplesPerSecond,
    double FinalTrainLoss, Evaluation Test, string WeightsSha256, Health.HealthReport Health);
