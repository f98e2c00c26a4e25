using Akka.Actor;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Workers;
using Xunit;
using static DistributedBackprop.Cluster.Tests.Protocol.ProtocolSamples;

namespace DistributedBackprop.Cluster.Tests.Protocol;

/// <summary>One node's weights cache: a probe plays the coordinator (the sender of the weights), others the entities.</summary>
public sealed class WeightsCacheTests : TestKit
{
    private const string RunId = "run-under-test";

    public WeightsCacheTests() : base(LocalSystem("weights-cache"))
    {
    }

    private static readonly NodeContext Node = Context(TinyOptions(1, 1), Subset(64, 10), 1);
    private static readonly Core.Data.FeatureNormaliser Normaliser = Core.Data.FeatureNormaliser.Fit(Node.Spec.RawData.Train);

    /// <summary>A cache that has the normaliser (and so the node's setup) already.</summary>
    private IActorRef NewCache()
    {
        var cache = NewCacheWithoutNormaliser();
        var coordinator = CreateTestProbe();
        coordinator.Send(cache, new NormaliserReady(RunId, Normaliser.Mean, Normaliser.Std));
        coordinator.ExpectMsg<SetupReady>(Patience);
        return cache;
    }

    private IActorRef NewCacheWithoutNormaliser() => Sys.ActorOf(Props.Create(() => new WeightsCache(Node.Spec)));

    [Fact]
    public void Weights_that_arrive_before_the_normaliser_are_served_with_the_setup_once_it_comes()
    {
        var cache = NewCacheWithoutNormaliser();
        var coordinator = CreateTestProbe();
        var requester = CreateTestProbe();
        coordinator.Send(cache, Version(0));
        requester.Send(cache, new GetWeights(RunId, 0));
        coordinator.Send(cache, new NormaliserReady(RunId, Normaliser.Mean, Normaliser.Std));

        var setup = coordinator.ExpectMsg<SetupReady>(Patience).Setup;
        var available = requester.ExpectMsg<WeightsAvailable>(Patience);
        Assert.Same(setup, available.Setup);
        Assert.Equal(Normaliser.Mean, setup.Normaliser.Mean);
        // The version was here all along: nothing was pulled.
        Assert.False(coordinator.HasMessages);
    }

    [Fact]
    public void A_normaliser_of_the_wrong_shape_is_dropped_and_the_cache_keeps_serving()
    {
        var cache = NewCacheWithoutNormaliser();
        var coordinator = CreateTestProbe();
        var requester = CreateTestProbe();
        coordinator.Send(cache, Version(0));
        coordinator.Send(cache, new NormaliserReady(RunId, [0f], [1f]));
        coordinator.Send(cache, new NormaliserReady(RunId, Normaliser.Mean, Normaliser.Std));
        requester.Send(cache, new GetWeights(RunId, 0));
        // The bad one built nothing: the only answer is the good one's setup.
        Assert.Equal(Normaliser.Mean, coordinator.ExpectMsg<SetupReady>(Patience).Setup.Normaliser.Mean);
        // Nor did it restart the cache: the version it held before is still served.
        Assert.Equal(0, requester.ExpectMsg<WeightsAvailable>(Patience).Version);
        Assert.False(coordinator.HasMessages);
    }

    [Fact]
    public void The_same_normaliser_again_reuses_the_nodes_setup_and_another_one_builds_a_new_one()
    {
        var cache = NewCacheWithoutNormaliser();
        var coordinator = CreateTestProbe();
        coordinator.Send(cache, new NormaliserReady(RunId, Normaliser.Mean, Normaliser.Std));
        var first = coordinator.ExpectMsg<SetupReady>(Patience).Setup;
        // A new coordinator incarnation merges the same statistics in the same order: the same normaliser.
        coordinator.Send(cache, new NormaliserReady(RunId, Normaliser.Mean.ToArray(), Normaliser.Std.ToArray()));
        Assert.Same(first, coordinator.ExpectMsg<SetupReady>(Patience).Setup);
        var other = Normaliser.Std.Select(s => s * 2).ToArray();
        coordinator.Send(cache, new NormaliserReady(RunId, Normaliser.Mean, other));
        Assert.NotSame(first, coordinator.ExpectMsg<SetupReady>(Patience).Setup);
    }

    private static WeightsVersion Version(long version) =>
        new(RunId, version, [version, version + 0.5f, -version], [version * 2f]);

    [Fact]
    public void A_requester_asking_before_the_version_arrives_gets_WeightsAvailable_once_it_arrives()
    {
        var cache = NewCache();
        var coordinator = CreateTestProbe();
        var requester = CreateTestProbe();

        requester.Send(cache, new GetWeights(RunId, 0));
        var sent = Version(0);
        coordinator.Send(cache, sent);

        var available = requester.ExpectMsg<WeightsAvailable>(Patience);
        Assert.Equal(0, available.Version);
        AssertBitEqual(sent.Parameters, available.Weights.Parameters, "parameters");
        AssertBitEqual(sent.Buffers, available.Weights.Buffers, "buffers");
        // Nothing was cached when it asked, so there was nothing to pull.
        Assert.False(coordinator.HasMessages);
    }

    [Fact]
    public void A_resumed_coordinator_incarnations_older_version_is_kept_and_waiters_for_the_dead_timeline_are_released()
    {
        var cache = NewCache();
        var oldCoordinator = CreateTestProbe();
        var newCoordinator = CreateTestProbe();
        var stuck = CreateTestProbe();
        var requester = CreateTestProbe();
        for (var v = 6; v <= 8; v++)
        {
            oldCoordinator.Send(cache, Version(v));
        }
        // A job of the old incarnation waits for a version it never published.
        stuck.Send(cache, new GetWeights(RunId, 9));

        // The new incarnation resumed from the checkpoint of step 5 and publishes version 5.
        var resumed = Version(5);
        newCoordinator.Send(cache, resumed);

        Assert.Equal(9, stuck.ExpectMsg<WeightsGone>(Patience).Version);
        requester.Send(cache, new GetWeights(RunId, 5));
        var available = requester.ExpectMsg<WeightsAvailable>(Patience);
        Assert.Equal(5, available.Version);
        AssertBitEqual(resumed.Parameters, available.Weights.Parameters, "parameters");
        // The replay's version 6 is the new incarnation's to publish; until then a request waits (and pulls from it).
        requester.Send(cache, new GetWeights(RunId, 6));
        Assert.Equal(6, newCoordinator.ExpectMsg<PullWeights>(Patience).Version);
        newCoordinator.Send(cache, Version(6));
        Assert.Equal(6, requester.ExpectMsg<WeightsAvailable>(Patience).Version);
    }

    [Fact]
    public void A_version_older_than_the_cache_keeps_is_WeightsGone()
    {
        var cache = NewCache();
        var coordinator = CreateTestProbe();
        var requester = CreateTestProbe();
        for (var v = 0; v < 5; v++)
        {
            coordinator.Send(cache, Version(v));
        }

        requester.Send(cache, new GetWeights(RunId, 0));
        Assert.Equal(0, requester.ExpectMsg<WeightsGone>(Patience).Version);
        requester.Send(cache, new GetWeights(RunId, 1));
        Assert.Equal(1, requester.ExpectMsg<WeightsGone>(Patience).Version);
        // The newest three are kept.
        requester.Send(cache, new GetWeights(RunId, 2));
        Assert.Equal(2, requester.ExpectMsg<WeightsAvailable>(Patience).Version);
        requester.Send(cache, new GetWeights(RunId, 4));
        Assert.Equal(4, requester.ExpectMsg<WeightsAvailable>(Patience).Version);
        Assert.False(coordinator.HasMessages);
    }

    [Fact]
    public void A_missing_version_when_newer_ones_exist_is_pulled_from_the_sender_of_the_weights()
    {
        var cache = NewCache();
        var coordinator = CreateTestProbe();
        var first = CreateTestProbe();
        var second = CreateTestProbe();
        coordinator.Send(cache, Version(0));
        coordinator.Send(cache, Version(2)); // version 1 was lost on the way

        first.Send(cache, new GetWeights(RunId, 1));
        var pull = coordinator.ExpectMsg<PullWeights>(Patience);
        Assert.Equal(new PullWeights(RunId, 1), pull);
        Assert.Equal(cache, coordinator.LastSender);

        // A second entity waiting for the same version does not pull it again.
        second.Send(cache, new GetWeights(RunId, 1));
        coordinator.Reply(Version(1));
        Assert.Equal(1, first.ExpectMsg<WeightsAvailable>(Patience).Version);
        Assert.Equal(1, second.ExpectMsg<WeightsAvailable>(Patience).Version);
        Assert.False(coordinator.HasMessages, "the cache pulled the same version twice");

        // A version newer than any held (its broadcast lost) is pulled too.
        first.Send(cache, new GetWeights(RunId, 3));
        Assert.Equal(new PullWeights(RunId, 3), coordinator.ExpectMsg<PullWeights>(Patience));
        coordinator.Reply(Version(3));
        Assert.Equal(3, first.ExpectMsg<WeightsAvailable>(Patience).Version);
    }
    /// <summary>Range <paramref name="range"/> of a version under a plan of two ranges of generation <paramref name="generation"/>.</summary>
    private static WeightsRange Range(long generation, long version, int range)
    {
        var network = Node.Spec.Network;
        var middle = new Core.Training.ParameterBlocks(network).Ranges(2, network.ResultLength)[1].First;
        var plan = new RangePlan(Node.Spec.ConfigHash, generation, ["akka://owner-0", "akka://owner-1"], [0, middle],
            [middle, network.ResultLength]);
        var (first, end) = range == 0 ? (0, middle) : (middle, network.ParameterCount);
        return new WeightsRange(plan, version, range, Enumerable.Repeat(version + 0.5f * generation, end - first).ToArray(),
            range == 0 ? new float[network.BufferCount] : []);
    }

    /// <summary>
    /// A cache holding versions 6..8 of plan generation 1, each served to a job of that plan; the owner sends the ranges.
    /// </summary>
    private IActorRef CacheWithOldPlan(Akka.TestKit.TestProbe owner, Akka.TestKit.TestProbe requester)
    {
        var cache = NewCache();
        for (var v = 6; v <= 8; v++)
        {
            owner.Send(cache, Range(generation: 1, v, 0));
            owner.Send(cache, Range(generation: 1, v, 1));
        }
        requester.Send(cache, new GetWeights(Node.Spec.ConfigHash, 8, Generation: 1));
        Assert.Equal(1, requester.ExpectMsg<WeightsAvailable>(Patience).Plan!.Generation);
        return cache;
    }

    /// <summary>
    /// A coordinator that starts again (sharded aggregation) cuts a new plan and replays from its checkpoint, below the
    /// versions the caches hold of the old plan. A job of the new plan asks for such a version before its ranges are in:
    /// it waits for them, it is not told "gone" (which made every worker give its job back, over and over, until the
    /// cluster's heartbeats suffered and the job stalled), and it gets the new plan with the weights.
    /// </summary>
    [Fact]
    public void A_version_of_a_newer_plan_below_the_versions_held_waits_for_its_ranges_and_is_not_gone()
    {
        var owner = CreateTestProbe();
        var requester = CreateTestProbe();
        var cache = CacheWithOldPlan(owner, requester);
        // An old plan's job for a version below those held: gone, as before.
        requester.Send(cache, new GetWeights(Node.Spec.ConfigHash, 5, Generation: 1));
        Assert.Equal(5, requester.ExpectMsg<WeightsGone>(Patience).Version);

        // The new plan's job asks for version 5 before any of its ranges has come.
        requester.Send(cache, new GetWeights(Node.Spec.ConfigHash, 5, Generation: 2));
        owner.Send(cache, Range(generation: 2, 5, 0));
        owner.Send(cache, Range(generation: 2, 5, 1));
        var available = requester.ExpectMsg<WeightsAvailable>(Patience);
        Assert.Equal(5, available.Version);
        Assert.Equal(2, available.Plan!.Generation);
        Assert.Equal(5 + 0.5f * 2, available.Weights.Parameters[0]);
    }

    /// <summary>A version held of the old plan is not served to a job of the new one: its plan names owners that are gone.</summary>
    [Fact]
    public void A_version_held_of_an_older_plan_waits_for_the_newer_plans_ranges()
    {
        var owner = CreateTestProbe();
        var requester = CreateTestProbe();
        var cache = CacheWithOldPlan(owner, requester);
        requester.Send(cache, new GetWeights(Node.Spec.ConfigHash, 8, Generation: 2));
        owner.Send(cache, Range(generation: 2, 8, 0));
        owner.Send(cache, Range(generation: 2, 8, 1));
        var available = requester.ExpectMsg<WeightsAvailable>(Patience);
        Assert.Equal(2, available.Plan!.Generation);
        Assert.Equal(8 + 0.5f * 2, available.Weights.Parameters[^1]);
    }
}
