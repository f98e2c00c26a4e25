using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Cluster.Hosting;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;
using Xunit;
using static DistributedBackprop.Cluster.Tests.Protocol.ProtocolSamples;

namespace DistributedBackprop.Cluster.Tests.Protocol;

/// <summary>
/// The coordinator inside a real one-node cluster (so it gets past WaitingForMembers through its own MemberUp, with no
/// test seam in production code). A probe stands in for the shard region (it answers GetCurrentRegions, StartWorker and
/// every job) and another for this node's weights cache, reached through a forwarder at /user/weights-cache.
/// </summary>
public sealed class CoordinatorProtocolTests : TestKit
{
    public CoordinatorProtocolTests() : base(SingleNodeCluster("coordinator-protocol"))
    {
    }

    private Address SelfAddress => Akka.Cluster.Cluster.Get(Sys).SelfAddress;

    /// <param name="Worker">plays worker-0, the sender of every result (a worker's messages count only from that worker).</param>
    private sealed record Run(NodeContext Context, TrainingSetup Setup, IActorRef Coordinator, TestProbe Region,
        TestProbe Cache, WeightsVersion Weights0, IReadOnlyList<ComputeSlices> Step0, TestProbe Worker);

    /// <summary>Plays the region and the workers up to the first step's jobs, checking each message on the way.</summary>
    private Run StartRun(TrainingOptions options, DataSplit raw)
    {
        var context = Context(options, raw);
        var runId = context.Spec.ConfigHash;
        var region = CreateTestProbe("region");
        var cache = CreateTestProbe("cache");
        var localCache = Sys.ActorOf(Props.Create(() => new ForwardTo(cache.Ref)), "weights-cache");
        var coordinator = Sys.ActorOf(Props.Create(() => new TrainingCoordinator(context, region.Ref, localCache)), "coordinator");
        // What the node agent does on every node: only nodes with matching options count towards --min-nodes.
        coordinator.Tell(new RegisterNode(SelfAddress.ToString(), context.Spec.ConfigHash), TestActor);
        ExpectMsg<NodeVerdict>(v => v.Accepted, Patience);

        // Phase 1: once this node's cache is known, it asks for the regions and starts only when enough exist.
        region.ExpectMsg<GetCurrentRegions>(Patience);
        region.Reply(new CurrentRegions(ImmutableHashSet.Create(SelfAddress)));

        // Phase 2: the workers start one at a time (the next only after the previous one said where it lives). Each
        // answers from an actor named by its id, as a sharding entity does.
        var workers = new List<TestProbe>();
        for (var k = 0; k < options.Workers; k++)
        {
            var start = region.ExpectMsg<StartWorker>(Patience);
            Assert.Equal(WorkerMessageExtractor.WorkerId(k), start.WorkerId);
            Assert.Equal(runId, start.RunId);
            Assert.False(region.HasMessages, "the next worker was started before the previous one answered");
            // Started "elsewhere" by its message: where it lives is where it answered from.
            region.Reply(new WorkerStarted(runId, start.WorkerId, SelfAddress.ToString()));
            workers.Add(CreateTestProbe(start.WorkerId));
            workers[k].Send(coordinator, new WorkerStarted(runId, start.WorkerId, "akka.tcp://distbp@10.9.9.9:1"));
        }

        // Phase 3: feature statistics, contiguous chunk runs in worker order; answered from the raw data.
        var chunks = (raw.Train.Count + FeatureStatistics.DefaultChunkRows - 1) / FeatureStatistics.DefaultChunkRows;
        var statistics = ReceiveRuns<ComputeStatistics>(region, chunks, s => (s.WorkerId, s.FirstChunk, s.ChunkCount));
        AssertContiguousRuns(statistics.Select(s => (s.WorkerId, s.FirstChunk, s.ChunkCount)).ToList(), chunks, options.Workers);
        foreach (var job in statistics)
        {
            Assert.Equal(runId, job.RunId);
            for (var c = job.FirstChunk; c < job.FirstChunk + job.ChunkCount; c++)
            {
                var start = c * job.ChunkRows;
                var partial = FeatureStatistics.Of(raw.Train, start, Math.Min(job.ChunkRows, raw.Train.Count - start));
                coordinator.Tell(new StatisticsResult(runId, c, partial.Count, partial.Mean, partial.M2), region.Ref);
            }
        }

        // The cache gets the merged normaliser (once: the identified cache is this node's), builds the node's setup and
        // hands it to the coordinator; then it gets weights version 0, before any step is handed out.
        var normaliser = cache.ExpectMsg<NormaliserReady>(Patience);
        Assert.Equal(runId, normaliser.RunId);
        var setup = TrainingSetup.Create(options, raw, new FeatureNormaliser(normaliser.Mean, normaliser.Std));
        Assert.False(region.HasMessages, "a step was handed out before this node's setup was ready");
        cache.Reply(new SetupReady(setup));
        var weights0 = cache.ExpectMsg<WeightsVersion>(Patience);
        Assert.Equal(0, weights0.Version);

        // Phase 4: step 0, one contiguous run of slices per worker, all with version 0.
        var step0 = ReceiveRuns<ComputeSlices>(region, options.Slices, j => (j.WorkerId, j.FirstSlice, j.SliceCount));
        Assert.All(step0, j =>
        {
            Assert.Equal(runId, j.RunId);
            Assert.Equal(0, j.Step);
            Assert.Equal(0, j.Version);
        });
        AssertContiguousRuns(step0.Select(j => (j.WorkerId, j.FirstSlice, j.SliceCount)).ToList(), options.Slices,
            options.Workers);
        return new Run(context, setup, coordinator, region, cache, weights0, step0, workers[0]);
    }

    private static List<T> ReceiveRuns<T>(TestProbe probe, int items, Func<T, (string, int, int Count)> run)
    {
        var jobs = new List<T>();
        for (var covered = 0; covered < items;)
        {
            var job = probe.ExpectMsg<T>(Patience);
            jobs.Add(job);
            covered += run(job).Count;
        }
        return jobs;
    }

    /// <summary>Worker k gets items [k·n/w, (k+1)·n/w): contiguous, in worker order, none empty, all covered once.</summary>
    private static void AssertContiguousRuns(IReadOnlyList<(string Worker, int First, int Count)> runs, int n, int workers)
    {
        var expected = Enumerable.Range(0, workers)
            .Select(k => (Worker: WorkerMessageExtractor.WorkerId(k), First: k * n / workers, Count: (k + 1) * n / workers - k * n / workers))
            .Where(r => r.Count > 0)
            .ToList();
        Assert.Equal(expected, runs);
    }

    private static ModelWeights WeightsOf(WeightsVersion version) => new(version.Parameters, version.Buffers);

    private static SliceResult Result(string runId, long step, long version, TreeNode node, float[] sum) =>
        new(runId, step, version, node.Level, node.Index, (float[])sum.Clone(), "worker-0", 0);

    [Fact]
    public void Coordinator_starts_workers_then_statistics_then_step_0_with_contiguous_slice_runs()
    {
        // The whole embedded sample: two statistics chunks over three workers, eight slices over three workers.
        var run = StartRun(TinyOptions(workers: 3), EmbeddedSample.Load());
        Assert.Equal(
            [("worker-0", 0, 2), ("worker-1", 2, 3), ("worker-2", 5, 3)],
            run.Step0.Select(j => (j.WorkerId, j.FirstSlice, j.SliceCount)).ToList());
        Assert.False(run.Context.Outcome.IsCompleted);
    }

    [Fact]
    public async Task Stale_duplicate_overlapping_and_shuffled_results_apply_each_step_once_with_the_local_trainers_weights()
    {
        // 128 training rows, batch 64: two steps, then the evaluation of 300 held-out rows (two chunks) and the end.
        var options = TinyOptions(workers: 3);
        var expectedSha = new LocalTrainer(TrainingSetup.Create(options, Subset(128, 300))).Run().WeightsSha256;
        var run = StartRun(options, Subset(128, 300));
        var runId = run.Context.Spec.ConfigHash;
        var setup = run.Setup;
        var slices = options.Slices;
        var rng = new Random(20261128);

        // Step 0: every aligned subtree below the root (8 leaves, 4 pairs, 2 halves), duplicates of some, stale results
        // carrying garbage (another run, a step never reached, a wrong version, a past version for the next step),
        // malformed ones (a level above the root, a short sum) and a WorkFailed of another run, all shuffled.
        var weights0 = WeightsOf(run.Weights0);
        var sums0 = AllSubtreesBelowRoot(setup, weights0, step: 0, slices);
        var garbage = Enumerable.Repeat(1e3f, setup.Network.ResultLength).ToArray();
        var messages = new List<object>();
        messages.AddRange(sums0.Select(s => Result(runId, 0, 0, s.Key, s.Value)));
        messages.AddRange(sums0.OrderBy(_ => rng.Next()).Take(5).Select(s => Result(runId, 0, 0, s.Key, s.Value)));
        messages.Add(Result("another-run", 0, 0, new TreeNode(2, 0), garbage));
        messages.Add(Result(runId, 5, 0, new TreeNode(2, 0), garbage));
        messages.Add(Result(runId, 0, 9, new TreeNode(2, 1), garbage));
        messages.Add(Result(runId, 1, 0, new TreeNode(2, 1), garbage));
        messages.Add(Result(runId, 0, 0, new TreeNode(4, 0), garbage));
        messages.Add(Result(runId, 0, 0, new TreeNode(40, 0), garbage));
        messages.Add(Result(runId, 0, 0, new TreeNode(0, 1), garbage[..7]));
        messages.Add(new WorkFailed("another-run", 0, "worker-9", "refused: not my run"));
        var shuffled0 = messages.OrderBy(_ => rng.Next()).ToList();
        // First, garbage "from worker-0" that another actor sends: a result counts only from its worker; and garbage from
        // worker-0 for a node whose first slice, 2^32, wraps to slice 0 in 32-bit arithmetic.
        run.Coordinator.Tell(Result(runId, 0, 0, new TreeNode(0, 0), garbage), run.Region.Ref);
        run.Coordinator.Tell(Result(runId, 0, 0, new TreeNode(2, 1 << 30), garbage), run.Worker.Ref);
        foreach (var message in shuffled0)
        {
            run.Coordinator.Tell(message, run.Worker.Ref);
        }

        // Exactly one new version, then step 1's jobs with it.
        var weights1 = run.Cache.ExpectMsg<WeightsVersion>(Patience);
        Assert.Equal(1, weights1.Version);
        var step1 = ReceiveRuns<ComputeSlices>(run.Region, slices, j => (j.WorkerId, j.FirstSlice, j.SliceCount));
        Assert.All(step1, j => Assert.Equal((1L, 1L), (j.Step, j.Version)));

        // Step 1: the covers the workers really return, last worker first, with all of step 0's messages (now stale)
        // interleaved; a garbage result of step 1 with version 0 (the old weights) must be dropped too.
        var replies1 = step1
            .SelectMany(j => SubtreeSums(setup, WeightsOf(weights1), 1, j.FirstSlice, j.FirstSlice + j.SliceCount))
            .Select(s => (object)Result(runId, 1, 1, s.Key, s.Value))
            .Reverse()
            .ToList();
        var stale = shuffled0.Select(m => m is SliceResult r ? r with { Sum = (float[])r.Sum.Clone() } : m).ToList();
        stale.Add(Result(runId, 1, 0, new TreeNode(1, 0), garbage));
        var interleaved = replies1.Zip(stale.Chunk((stale.Count + replies1.Count - 1) / replies1.Count),
            (reply, before) => before.Append(reply)).SelectMany(x => x).ToList();
        foreach (var message in interleaved)
        {
            run.Coordinator.Tell(message, run.Worker.Ref);
        }

        var weights2 = run.Cache.ExpectMsg<WeightsVersion>(Patience);
        Assert.Equal(2, weights2.Version);

        // End of the epoch: the held-out chunks are evaluated with version 2, then the job finishes.
        var evaluations = ReceiveRuns<EvaluateChunks>(run.Region, Evaluator.ChunkCount(300), j => (j.WorkerId, j.FirstChunk, j.ChunkCount));
        var workspace = new Workspace(setup.Network, Evaluator.ChunkRows);
        foreach (var job in evaluations)
        {
            Assert.Equal(2, job.Version);
            for (var c = job.FirstChunk; c < job.FirstChunk + job.ChunkCount; c++)
            {
                var (lossSum, correct) = Evaluator.EvaluateChunk(setup.Network, WeightsOf(weights2), setup.Data.Test, c, workspace);
                run.Coordinator.Tell(new EvaluationResult(runId, 2, c, lossSum, correct), run.Region.Ref);
            }
        }

        var outcome = await run.Context.Outcome.WaitAsync(Patience);
        Assert.Equal(JobStatus.Finished, outcome.Status);
        Assert.Equal(2, outcome.Result!.Steps);
        Assert.Equal(2, outcome.Result.StepsRun);
        Assert.Equal(expectedSha, outcome.Result.WeightsSha256);
        Assert.Equal(expectedSha, WeightsOf(weights2).Sha256());
        // No step was applied twice: nothing else reached the cache or the workers before the end.
        Assert.False(run.Cache.HasMessages, "the cache got a version more than once per step");
        Assert.False(run.Region.HasMessages, "the workers got more jobs than the two steps and the evaluation");
    }

    /// <summary>Every aligned subtree strictly below the root of a tree of <paramref name="slices"/> slices.</summary>
    private static Dictionary<TreeNode, float[]> AllSubtreesBelowRoot(TrainingSetup setup, ModelWeights weights, long step,
        int slices)
    {
        var all = new Dictionary<TreeNode, float[]>();
        for (var level = 0; level < GradientTree.RootLevel(slices); level++)
        {
            for (var index = 0; index << level < slices; index++)
            {
                var node = new TreeNode(level, index);
                foreach (var (key, sum) in SubtreeSums(setup, weights, step, node.First, node.End(slices)))
                {
                    Assert.Equal(node, key);
                    all[key] = sum;
                }
            }
        }
        return all;
    }
}
