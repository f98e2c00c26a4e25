using Akka.Actor;
using Akka.Event;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Core.Data;
using Xunit;
using static DistributedBackprop.Cluster.Tests.Protocol.ProtocolSamples;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

/// <summary>Before the first step, stage by stage: probes play the shard region and the nodes' caches.</summary>
public sealed class PreparationTests : TestKit
{
    private static readonly Address Self = new("akka.tcp", "distbp", "10.0.0.1", 4053);
    private static readonly Address Other = new("akka.tcp", "distbp", "10.0.0.2", 4053);
    private static readonly string[] Workers = ["worker-0", "worker-1", "worker-2"];
    private const string Run = "run-1";

    private readonly JobSpec _spec = Context(TinyOptions(3), Subset(256, 64), minNodes: 2).Spec;
    private readonly ClusterView _view = new(Self);
    private readonly Akka.TestKit.TestProbe _region;
    private readonly Akka.TestKit.TestProbe _otherCache;
    private readonly Akka.TestKit.TestProbe _localCache;
    private readonly Preparation _preparation;

    public PreparationTests() : base(LocalSystem("preparation"))
    {
        _region = CreateTestProbe();
        _otherCache = CreateTestProbe();
        _localCache = CreateTestProbe();
        var work = new WorkAssignment(_spec.Options.Slices, Workers);
        var membership = new Membership(_view, work, new FaultLog(), RunRecorder.None, Workers.Length, 1, Run, _spec.ConfigHash, NoLogger.Instance);
        var outbox = new CoordinatorOutbox(Run, _region.Ref, TensorTransport.For(Sys), _view, Sys, TestActor);
        _preparation = new Preparation(_spec, Workers, _view, membership, work, outbox, _localCache.Ref, resuming: false);
        _view.MemberUp(Self);
        _view.MemberUp(Other);
        _view.CacheFound(Self, _localCache.Ref);
        _view.CacheFound(Other, _otherCache.Ref);
    }

    [Fact]
    public void Workers_start_once_min_nodes_accepted_nodes_and_their_regions_are_known_one_worker_at_a_time()
    {
        _view.Register(Self, _spec.ConfigHash, Run, _spec.ConfigHash, out _);
        // A node with other options is a member with a cache, but does not count towards --min-nodes.
        _view.Register(Other, "other-options", Run, _spec.ConfigHash, out _);
        Assert.False(_preparation.EnoughNodes);
        _view.Register(Other, _spec.ConfigHash, Run, _spec.ConfigHash, out _);
        Assert.True(_preparation.EnoughNodes);

        Assert.False(_preparation.RegionsKnown(1));
        Assert.False(_region.HasMessages);
        Assert.True(_preparation.RegionsKnown(2));
        Assert.Equal(Preparation.Stage.StartingWorkers, _preparation.Current);
        Assert.False(_preparation.EnoughNodes);

        for (var i = 0; i < Workers.Length; i++)
        {
            Assert.Equal(Workers[i], _region.ExpectMsg<StartWorker>(Patience).WorkerId);
            // Another worker's start, or a second one, does not move the stage on.
            Assert.False(_preparation.WorkerStarted(new WorkerStarted(Run, Workers[(i + 1) % Workers.Length], Other.ToString())));
            Assert.False(_region.HasMessages);
            var last = _preparation.WorkerStarted(new WorkerStarted(Run, Workers[i], Other.ToString()));
            Assert.Equal(i == Workers.Length - 1, last);
            Assert.Equal(Other.ToString(), _view.PlacementOf(Workers[i]));
        }
        Assert.Equal(Preparation.Stage.Statistics, _preparation.Current);
        Assert.Equal("feature statistics", _preparation.Waiting);
    }

    [Fact]
    public void The_statistics_make_the_single_process_normaliser_which_every_nodes_cache_gets_and_the_local_one_again_when_nudged()
    {
        StartAllWorkers();
        var asked = _region.ExpectMsg<ComputeStatistics>(Patience);
        Assert.Equal((0, 1), (asked.FirstChunk, asked.ChunkCount));
        Assert.True(_preparation.AwaitsStatistics(0));
        Assert.False(_preparation.AwaitsStatistics(1));

        var train = _spec.RawData.Train;
        var statistics = FeatureStatistics.Of(train, 0, train.Count);
        var result = new StatisticsResult(Run, 0, statistics.Count, statistics.Mean, statistics.M2);
        Assert.False(_preparation.HasShape(result with { Count = statistics.Count - 1 }));
        Assert.False(_preparation.HasShape(result with { M2 = [0.0] }));
        Assert.True(_preparation.HasShape(result));
        var normaliser = _preparation.Statistics(result);

        var expected = FeatureNormaliser.Fit(train);
        Assert.NotNull(normaliser);
        AssertBitEqual(expected.Mean, normaliser.Mean, "mean");
        AssertBitEqual(expected.Std, normaliser.Std, "std");
        Assert.Equal(Preparation.Stage.Setup, _preparation.Current);
        Assert.False(_preparation.AwaitsStatistics(0));
        AssertBitEqual(expected.Mean, _otherCache.ExpectMsg<NormaliserReady>(Patience).Mean, "the other node's normaliser");
        AssertBitEqual(expected.Mean, _localCache.ExpectMsg<NormaliserReady>(Patience).Mean, "this node's normaliser");
        // Only this node's setup is waited for: a nudge asks this node's cache again, no other.
        _preparation.Nudge();
        _localCache.ExpectMsg<NormaliserReady>(Patience);
        Assert.False(_otherCache.HasMessages);
    }

    [Fact]
    public void A_nudge_asks_again_for_what_the_stage_is_missing()
    {
        _view.Register(Self, _spec.ConfigHash, Run, _spec.ConfigHash, out _);
        _view.Register(Other, _spec.ConfigHash, Run, _spec.ConfigHash, out _);
        _preparation.RegionsKnown(2);
        _region.ExpectMsg<StartWorker>(Patience);
        _preparation.Nudge();
        Assert.Equal("worker-0", _region.ExpectMsg<StartWorker>(Patience).WorkerId);
        Assert.Equal("starting the workers", _preparation.Waiting);
    }

    private void StartAllWorkers()
    {
        _view.Register(Self, _spec.ConfigHash, Run, _spec.ConfigHash, out _);
        _view.Register(Other, _spec.ConfigHash, Run, _spec.ConfigHash, out _);
        _preparation.RegionsKnown(2);
        foreach (var worker in Workers)
        {
            _region.ExpectMsg<StartWorker>(Patience);
            _preparation.WorkerStarted(new WorkerStarted(Run, worker, Self.ToString()));
        }
    }
}
