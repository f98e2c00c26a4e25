using Akka.Actor;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Workers;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;
using Xunit;
using static DistributedBackprop.Cluster.Tests.Protocol.ProtocolSamples;

namespace DistributedBackprop.Cluster.Tests.Protocol;

/// <summary>
/// One worker entity built with Props (no sharding) next to a real weights cache; a probe plays the coordinator.
/// The entity runs two threads; the oracle runs one on its own copy of the data: the bits must not care.
/// </summary>
public sealed class WorkerEntityTests : TestKit
{
    private const string WorkerId = "worker-1";
    // Three epochs of four steps: the jobs below name steps up to 9.
    private readonly TrainingOptions _options = TinyOptions(workers: 1, threads: 2) with { Epochs = 3 };
    private readonly NodeContext _context;
    private readonly TrainingSetup _oracle;
    private readonly IActorRef _cache;
    private readonly IActorRef _entity;

    public WorkerEntityTests() : base(LocalSystem("worker-entity"))
    {
        // 256 training rows, batch 64: four steps per epoch.
        // Jobs wait for their weights longer than any test waits: only the entity's own reactions end a wait here.
        _context = Context(_options, Subset(256, 10), tuning: new CoordinatorTuning { WeightsWait = TimeSpan.FromMinutes(10) });
        var normaliser = FeatureNormaliser.Fit(_context.Spec.RawData.Train);
        _oracle = TrainingSetup.Create(_options, Subset(256, 10), normaliser);
        var context = _context;
        _cache = Sys.ActorOf(Props.Create(() => new WeightsCache(context.Spec)), "weights-cache");
        // The normaliser, as the coordinator of this process sends it: the cache builds the node's setup and says so.
        _cache.Tell(new NormaliserReady(context.Spec.ConfigHash, normaliser.Mean, normaliser.Std), TestActor);
        ExpectMsg<SetupReady>(Patience);
        var cache = _cache;
        _entity = Sys.ActorOf(Props.Create(() => new WorkerEntity(WorkerId, context, cache)), WorkerId);
    }

    private string RunId => _context.Spec.ConfigHash;

    private WeightsVersion Weights(long version)
    {
        var weights = _oracle.NewState().Weights;
        // A distinct, deterministic version: scale the initial parameters.
        var parameters = weights.Parameters.Select(p => p * (1 + version / 8f)).ToArray();
        return new WeightsVersion(RunId, version, parameters, (float[])weights.Buffers.Clone());
    }

    [Fact]
    public void Slice_results_equal_the_slice_runners_bit_for_bit_even_when_the_weights_arrive_after_the_job()
    {
        var coordinator = CreateTestProbe();
        // Job first: the entity waits for version 3 at the cache.
        coordinator.Send(_entity, new ComputeSlices(WorkerId, RunId, Step: 1, Version: 3, FirstSlice: 2, SliceCount: 3));
        var weights = Weights(3);
        coordinator.Send(_cache, weights);

        var expected = SubtreeSums(_oracle, new(weights.Parameters, weights.Buffers), step: 1, first: 2, end: 5);
        Assert.Equal(2, expected.Count); // slices 2..4: the pair (1,1) and the leaf (0,4)
        while (expected.Count > 0)
        {
            var result = coordinator.ExpectMsg<SliceResult>(Patience);
            Assert.Equal((RunId, 1L, 3L, WorkerId), (result.RunId, result.Step, result.Version, result.WorkerId));
            Assert.True(expected.Remove(new(result.Level, result.Index), out var sum), $"unexpected node ({result.Level}, {result.Index})");
            AssertBitEqual(sum, result.Sum, $"node ({result.Level}, {result.Index})");
        }

        // The next job, another step and run of slices with weights already cached.
        coordinator.Send(_entity, new ComputeSlices(WorkerId, RunId, Step: 3, Version: 3, FirstSlice: 0, SliceCount: 8));
        var root = SubtreeSums(_oracle, new(weights.Parameters, weights.Buffers), step: 3, first: 0, end: 8).Single();
        var whole = coordinator.ExpectMsg<SliceResult>(Patience);
        Assert.Equal((root.Key.Level, root.Key.Index), (whole.Level, whole.Index));
        AssertBitEqual(root.Value, whole.Sum, "root");
    }

    [Fact]
    public void Jobs_of_another_run_are_refused_with_WorkFailed_and_this_runs_jobs_still_work()
    {
        var coordinator = CreateTestProbe();
        coordinator.Send(_cache, Weights(0));

        coordinator.Send(_entity, new ComputeSlices(WorkerId, "another-run", 0, 0, 0, 1));
        var refused = coordinator.ExpectMsg<WorkFailed>(Patience);
        Assert.Equal(("another-run", 0L, WorkerId), (refused.RunId, refused.Step, refused.WorkerId));

        coordinator.Send(_entity, new EvaluateChunks(WorkerId, "another-run", 0, 0, 1));
        Assert.Equal("another-run", coordinator.ExpectMsg<WorkFailed>(Patience).RunId);

        coordinator.Send(_entity, new ComputeStatistics(WorkerId, "another-run", 0, 1, FeatureStatistics.DefaultChunkRows));
        Assert.Equal("another-run", coordinator.ExpectMsg<WorkFailed>(Patience).RunId);

        coordinator.Send(_entity, new ComputeSlices(WorkerId, RunId, 0, 0, 0, 1));
        var result = coordinator.ExpectMsg<SliceResult>(Patience);
        Assert.Equal((RunId, 0, 0), (result.RunId, result.Level, result.Index));
    }

    [Fact]
    public void Jobs_outside_the_runs_ranges_are_dropped_and_the_entity_takes_the_next()
    {
        var coordinator = CreateTestProbe();
        var errors = CreateTestProbe();
        Sys.EventStream.Subscribe(errors.Ref, typeof(Akka.Event.Error));
        coordinator.Send(_cache, Weights(0));
        // Zero rows per chunk and two billion chunks once looped for ever, allocating; the others index past the data.
        coordinator.Send(_entity, new ComputeStatistics(WorkerId, RunId, 0, int.MaxValue, 0));
        coordinator.Send(_entity, new ComputeStatistics(WorkerId, RunId, 0, int.MaxValue, FeatureStatistics.DefaultChunkRows));
        coordinator.Send(_entity, new ComputeStatistics(WorkerId, RunId, -1, 1, FeatureStatistics.DefaultChunkRows));
        coordinator.Send(_entity, new ComputeSlices(WorkerId, RunId, Step: 0, Version: 0, FirstSlice: 7, SliceCount: 2));
        coordinator.Send(_entity, new ComputeSlices(WorkerId, RunId, Step: 0, Version: 0, FirstSlice: 0, SliceCount: 0));
        coordinator.Send(_entity, new ComputeSlices(WorkerId, RunId, Step: 12, Version: 0, FirstSlice: 0, SliceCount: 1));
        coordinator.Send(_entity, new ComputeSlices(WorkerId, RunId, Step: -1, Version: 0, FirstSlice: 0, SliceCount: 1));
        coordinator.Send(_entity, new EvaluateChunks(WorkerId, RunId, 0, 0, int.MaxValue));

        // Nothing came of them: the entity answers in order, and the next good job is the first to be answered — by the
        // same incarnation (a job that threw would have been logged as an error before the entity restarted).
        coordinator.Send(_entity, new ComputeSlices(WorkerId, RunId, 0, 0, 0, 1));
        var result = coordinator.ExpectMsg<SliceResult>(Patience);
        Assert.Equal((RunId, 0L, 0, 0), (result.RunId, result.Step, result.Level, result.Index));
        Assert.False(errors.HasMessages, errors.HasMessages ? errors.ReceiveOne(TimeSpan.Zero)?.ToString() : "");
    }

    [Fact]
    public void A_refusal_names_no_run_id()
    {
        var coordinator = CreateTestProbe();
        coordinator.Send(_entity, new ComputeSlices(WorkerId, "another-run", 0, 0, 0, 1));
        var refused = coordinator.ExpectMsg<WorkFailed>(Patience);
        Assert.DoesNotContain(RunId, refused.Reason);
        Assert.DoesNotContain("another-run", refused.Reason);
    }

    [Fact]
    public void A_job_whose_weights_never_come_gives_way_to_a_new_coordinators_start()
    {
        // The old coordinator ordered a step and died before its weights reached this node: the job waits at the cache.
        var oldCoordinator = CreateTestProbe();
        oldCoordinator.Send(_entity, new ComputeSlices(WorkerId, RunId, Step: 7, Version: 7, FirstSlice: 0, SliceCount: 1));
        // The new incarnation starts the workers: the entity answers at once instead of waiting behind the dead job.
        var newCoordinator = CreateTestProbe();
        newCoordinator.Send(_entity, new StartWorker(WorkerId, RunId));
        var started = newCoordinator.ExpectMsg<WorkerStarted>(Patience);
        Assert.Equal((RunId, WorkerId), (started.RunId, started.WorkerId));
        var abandoned = oldCoordinator.ExpectMsg<WorkFailed>(Patience);
        Assert.Equal((7L, WorkerId), (abandoned.Step, abandoned.WorkerId));

        // And the entity works for the new incarnation, which resumed from an older version.
        newCoordinator.Send(_cache, Weights(5));
        newCoordinator.Send(_entity, new ComputeSlices(WorkerId, RunId, Step: 5, Version: 5, FirstSlice: 0, SliceCount: 1));
        var result = newCoordinator.ExpectMsg<SliceResult>(Patience);
        Assert.Equal((5L, 5L), (result.Step, result.Version));
    }

    [Fact]
    public void A_job_whose_weights_never_come_fails_after_the_wait_and_the_entity_takes_the_next()
    {
        var context = Context(_options, Subset(256, 10),
            tuning: new CoordinatorTuning { WeightsWait = TimeSpan.FromMilliseconds(300) });
        var cache = Sys.ActorOf(Props.Create(() => new WeightsCache(context.Spec)));
        var normaliser = FeatureNormaliser.Fit(context.Spec.RawData.Train);
        cache.Tell(new NormaliserReady(context.Spec.ConfigHash, normaliser.Mean, normaliser.Std), TestActor);
        ExpectMsg<SetupReady>(Patience);
        var entity = Sys.ActorOf(Props.Create(() => new WorkerEntity("worker-2", context, cache)));
        var coordinator = CreateTestProbe();
        coordinator.Send(entity, new ComputeSlices("worker-2", RunId, Step: 9, Version: 9, FirstSlice: 0, SliceCount: 1));
        coordinator.Send(entity, new ComputeStatistics("worker-2", RunId, 0, 1, FeatureStatistics.DefaultChunkRows));

        var failed = coordinator.ExpectMsg<WorkFailed>(Patience);
        Assert.Equal((9L, "worker-2"), (failed.Step, failed.WorkerId));
        Assert.Contains("did not reach this node", failed.Reason);
        Assert.Equal(RunId, coordinator.ExpectMsg<StatisticsResult>(Patience).RunId);
    }
    /// <summary>
    /// Sharding hands the entity off (a rebalance, a node leaving) while its job still waits for weights that may never
    /// come: it gives the job back and stops at once, instead of holding the hand-off (and with it the shard's new home)
    /// until the wait ends.
    /// </summary>
    [Fact]
    public void A_hand_off_while_a_job_waits_for_its_weights_gives_the_job_back_and_stops_the_entity()
    {
        var coordinator = CreateTestProbe();
        coordinator.Send(_entity, new ComputeSlices(WorkerId, RunId, Step: 7, Version: 7, FirstSlice: 0, SliceCount: 1));
        Watch(_entity);
        _entity.Tell(StopWorker.Instance);
        var returned = coordinator.ExpectMsg<WorkFailed>(Patience);
        Assert.Equal((7L, WorkerId), (returned.Step, returned.WorkerId));
        Assert.Contains("handed off", returned.Reason);
        ExpectTerminated(_entity, Patience);
    }
}
