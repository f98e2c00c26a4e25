using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Cluster.Tests.Protocol;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

public sealed class RunProgressTests : IDisposable
{
    private readonly string _checkpoints = Path.Combine(Path.GetTempPath(), $"distbp-progress-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_checkpoints))
        {
            Directory.Delete(_checkpoints, recursive: true);
        }
    }

    /// <summary>Records what the coordinator tells the console.</summary>
    private sealed class Recorder : ITrainingObserver
    {
        public List<long> Steps { get; } = [];
        public List<(int Epoch, double TrainLoss)> Epochs { get; } = [];
        public void OnStep(StepReport report, int epoch, int stepInEpoch, int stepsPerEpoch, double samplesPerSecond) =>
            Steps.Add(report.Step);
        public void OnEpoch(int epoch, double trainLoss, Evaluation test) => Epochs.Add((epoch, trainLoss));
        public void OnWarning(Core.Health.HealthWarning warning) { }
    }

    [Fact]
    public void Steps_end_epochs_and_checkpoints_fall_due_on_the_schedule_the_single_process_trainer_uses()
    {
        // 256 rows, batch 64: 4 steps an epoch, 2 epochs, a checkpoint every 3 steps.
        var options = ProtocolSamples.TinyOptions() with { Epochs = 2, CheckpointDir = _checkpoints, CheckpointEvery = 3 };
        var setup = TrainingSetup.Create(options, ProtocolSamples.Subset(256, 64));
        var faults = new FaultLog();
        var observer = new Recorder();
        var progress = new RunProgress(setup, RunRecorder.None, faults, observer);
        var schedule = new RunSchedule(setup);
        var state = setup.NewState();
        var step = new StepRound("run-1", setup, new WorkAssignment(8, ["worker-0"]), new ResultVerifier(TimeSpan.FromSeconds(30)),
            faults, new BufferPool(setup.Network.ResultLength, 4), Akka.Event.NoLogger.Instance);

        var endsOfEpoch = new List<long>();
        faults.Add("worker-failed", 0, "worker-1", "re-assigned");
        while (state.Step < setup.TotalSteps)
        {
            progress.BeginStep();
            var report = state.Apply(new float[setup.Network.ResultLength], options.Batch, options.Slices);
            if (progress.Stepped(report, state, 0, step, workersAlive: 3, out var epoch))
            {
                endsOfEpoch.Add(report.Step);
                progress.Evaluated(state.Step - 1, epoch, new Evaluation(0.5, 0.25, 64));
            }
            // A fault is recovered by the first step that completes after it.
            Assert.Empty(faults.Open);
        }

        Assert.Equal(4, setup.Plan.StepsPerEpoch);
        Assert.Equal([3L, 7L], endsOfEpoch);
        Assert.Equal(Enumerable.Range(0, 8).Select(s => (long)s), observer.Steps);
        Assert.Equal([0, 1], observer.Epochs.Select(e => e.Epoch));
        var written = new CheckpointStore(_checkpoints).List().Select(path => ModelFile.Read(path).Header.Step).Order();
        Assert.Equal([3L, 6L], written);
        Assert.Equal(Enumerable.Range(1, 8).Where(s => schedule.CheckpointDue(s, false)).Select(s => (long)s), written);
        Assert.NotNull(faults.Records[0].RecoverySeconds);

        var result = progress.Result(state);
        Assert.Equal(8, result.StepsRun);
        Assert.Equal(state.Weights.Sha256(), result.WeightsSha256);
        Assert.Equal(0.25, result.Test.Accuracy);
    }
}
