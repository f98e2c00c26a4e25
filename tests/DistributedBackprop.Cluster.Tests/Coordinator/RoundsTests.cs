using Akka.Actor;
using Akka.Event;
using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;
using Xunit;
using static DistributedBackprop.Cluster.Tests.Protocol.ProtocolSamples;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

/// <summary>The statistics and evaluation rounds, where a coordinator starts, and who may join.</summary>
public sealed class RoundsTests : IDisposable
{
    private readonly string _checkpoints = Path.Combine(Path.GetTempPath(), $"distbp-resume-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_checkpoints))
        {
            Directory.Delete(_checkpoints, recursive: true);
        }
    }

    [Fact]
    public void Statistics_in_any_order_merge_into_the_single_process_normaliser()
    {
        // 10,000 rows: chunks of 4,096, 4,096 and 1,808 rows.
        var train = Dataset(10_000);
        var round = new StatisticsRound(train);
        Assert.Equal([0, 1, 2], round.Missing);
        Assert.True(round.HasShape(2, 1_808, train.FeatureCount, train.FeatureCount));
        Assert.False(round.HasShape(2, 4_096, train.FeatureCount, train.FeatureCount));
        Assert.False(round.HasShape(0, 4_096, train.FeatureCount - 1, train.FeatureCount));

        FeatureNormaliser? normaliser = null;
        foreach (var chunk in new[] { 2, 0, 1 })
        {
            Assert.Null(normaliser);
            Assert.True(round.IsAwaited(chunk));
            var rows = Math.Min(round.ChunkRows, train.Count - chunk * round.ChunkRows);
            normaliser = round.Add(chunk, FeatureStatistics.Of(train, chunk * round.ChunkRows, rows));
            Assert.False(round.IsAwaited(chunk));
        }
        var expected = FeatureNormaliser.Fit(train);
        Assert.NotNull(normaliser);
        AssertBitEqual(expected.Mean, normaliser.Mean, "mean");
        AssertBitEqual(expected.Std, normaliser.Std, "std");
    }

    [Fact]
    public void An_evaluation_takes_each_chunk_of_its_version_once_and_combines_them_in_chunk_order()
    {
        var round = new EvaluationRound(testCount: 2 * Evaluator.ChunkRows + 1, version: 7, epoch: 2);
        Assert.Equal([0, 1, 2], round.Missing);
        Assert.False(round.IsAwaited(6, 0));
        Assert.Null(round.Add(2, 0.5, 1));
        Assert.False(round.IsAwaited(7, 2));
        Assert.Null(round.Add(0, 10.0, 3));
        var test = round.Add(1, 20.0, 4);
        Assert.Equal(Evaluator.Combine([10.0, 20.0, 0.5], [3, 4, 1], 2 * Evaluator.ChunkRows + 1), test);
        Assert.Equal(2, round.Epoch);
    }

    [Fact]
    public void A_coordinator_resumes_from_the_newest_valid_checkpoint_and_records_it_and_otherwise_starts_at_step_0()
    {
        var options = TinyOptions() with { CheckpointDir = _checkpoints };
        var setup = TrainingSetup.Create(options, Subset(256, 64));
        var faults = new FaultLog();
        Assert.False(Resume.HasCheckpoint(options));
        Assert.Equal(0, Resume.RestoreOrStart(setup, faults, NoLogger.Instance, "node-0", out var none).Step);
        Assert.Null(none);
        Assert.Empty(faults.Records);

        var trainer = new LocalTrainer(setup);
        trainer.State.Apply(new float[setup.Network.ResultLength], options.Batch, options.Slices);
        trainer.State.Apply(new float[setup.Network.ResultLength], options.Batch, options.Slices);
        new CheckpointStore(_checkpoints).Save(setup, trainer.State);
        Assert.True(Resume.HasCheckpoint(options));

        var restored = Resume.RestoreOrStart(setup, faults, NoLogger.Instance, "node-0", out var resumedFrom);
        Assert.Equal(2, restored.Step);
        Assert.Equal(2, resumedFrom);
        Assert.Equal("resumed-from-checkpoint", Assert.Single(faults.Records).Kind);
    }

    [Fact]
    public void A_node_is_accepted_once_with_the_coordinators_options_and_refused_without_learning_the_run_otherwise()
    {
        var self = new Address("akka.tcp", "distbp", "10.0.0.1", 4053);
        var view = new ClusterView(self);
        view.MemberUp(self);
        var membership = new Membership(view, new WorkAssignment(8, ["worker-0"]), new FaultLog(), RunRecorder.None,
            1, 1, "run-1", "hash-a", NoLogger.Instance);

        var refused = membership.Register(self, "hash-b", out var refusedIsNew);
        Assert.False(refused.Accepted);
        Assert.False(refusedIsNew);
        Assert.Equal("", refused.RunId);
        Assert.DoesNotContain("hash-a", refused.Reason);
        Assert.True(membership.Register(self, "hash-a", out var first).Accepted);
        Assert.True(first);
        Assert.Equal("run-1", membership.Register(self, "hash-a", out var again).RunId);
        Assert.False(again);
    }

    private static Dataset Dataset(int rows)
    {
        var random = new Random(5);
        var features = new float[rows * 3];
        for (var i = 0; i < features.Length; i++)
        {
            features[i] = (float)(random.NextDouble() * 255);
        }
        return new Dataset("synthetic", features, new int[rows], featureCount: 3, classCount: 2);
    }
}
