using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;
using Xunit;
using static DistributedBackprop.Cluster.Tests.Protocol.ProtocolSamples;

namespace DistributedBackprop.Cluster.Tests.Faults;

/// <summary>
/// The bounded wait. An in-process cluster cannot run out of workers while its coordinator lives: every node has the
/// worker role (the singleton's role too), sharding re-homes a lost node's workers onto the survivors, and losing all
/// other nodes leaves the coordinator's node a minority that the Split Brain Resolver downs. So, as in the protocol
/// tests, the coordinator runs in a real one-node cluster and a probe plays the worker region: it starts the workers
/// and answers the statistics, then never answers a step, as when no live worker is left.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class TooFewWorkersTests() : TestKit(SingleNodeCluster("too-few-workers"))
{
    [Fact]
    public async Task Too_few_workers_for_too_long_checkpoints_and_exits_1_with_the_resume_command()
    {
        var dir = Directory.CreateTempSubdirectory("distbp-giveup-").FullName;
        try
        {
            var options = TinyOptions(workers: 2) with { CheckpointDir = dir, CheckpointEvery = 5 };
            var raw = Subset(128, 300);
            var workerWait = TimeSpan.FromSeconds(3);
            var context = new NodeContext(new JobSpec(options, raw, new JobOutputs(null, null, 1, 1), localWorkers: 1)
            {
                Tuning = new CoordinatorTuning
                {
                    ResendAfter = TimeSpan.FromMilliseconds(300),
                    MinStragglerDelay = TimeSpan.FromMilliseconds(300),
                    WorkerWait = workerWait,
                },
            });
            var runId = context.Spec.ConfigHash;
            var self = Akka.Cluster.Cluster.Get(Sys).SelfAddress;
            var region = CreateTestProbe("region");
            var cache = CreateTestProbe("cache");
            var localCache = Sys.ActorOf(Props.Create(() => new Protocol.ForwardTo(cache.Ref)), "weights-cache");
            var coordinator = Sys.ActorOf(Props.Create(() => new TrainingCoordinator(context, region.Ref, localCache)), "coordinator");
            // What the node agent does on every node: only nodes with matching options count towards --min-nodes.
            coordinator.Tell(new RegisterNode(Akka.Cluster.Cluster.Get(Sys).SelfAddress.ToString(), context.Spec.ConfigHash), TestActor);
            ExpectMsg<NodeVerdict>(v => v.Accepted, Patience);

            region.ExpectMsg<GetCurrentRegions>(Patience);
            region.Reply(new CurrentRegions(ImmutableHashSet.Create(self)));
            for (var k = 0; k < options.Workers; k++)
            {
                var start = region.ExpectMsg<StartWorker>(Patience);
                // A worker answers from an actor named by its id, as a sharding entity does.
                CreateTestProbe(start.WorkerId).Send(coordinator, new WorkerStarted(runId, start.WorkerId, self.ToString()));
            }
            var chunks = (raw.Train.Count + FeatureStatistics.DefaultChunkRows - 1) / FeatureStatistics.DefaultChunkRows;
            for (var answered = 0; answered < chunks;)
            {
                var job = region.ExpectMsg<ComputeStatistics>(Patience);
                for (var c = job.FirstChunk; c < job.FirstChunk + job.ChunkCount; c++, answered++)
                {
                    var first = c * job.ChunkRows;
                    var partial = FeatureStatistics.Of(raw.Train, first, Math.Min(job.ChunkRows, raw.Train.Count - first));
                    region.Reply(new StatisticsResult(runId, c, partial.Count, partial.Mean, partial.M2));
                }
            }
            // This node's cache builds the setup from the normaliser.
            var normaliser = cache.ExpectMsg<NormaliserReady>(Patience);
            cache.Reply(new SetupReady(TrainingSetup.Create(options, raw, new FeatureNormaliser(normaliser.Mean, normaliser.Std))));
            // Step 0 is handed out, and from here on nobody answers (nudges and copies go unanswered too).
            region.ExpectMsg<ComputeSlices>(Patience);
            var clock = Stopwatch.StartNew();

            var outcome = await context.Outcome.WaitAsync(workerWait + Patience);

            Assert.Equal(JobStatus.Failed, outcome.Status);
            Assert.True(clock.Elapsed >= workerWait - TimeSpan.FromMilliseconds(500), $"gave up after {clock.Elapsed}");
            Assert.Equal(dir, outcome.ResumeFrom);
            Assert.Contains("no progress on step 0", outcome.Message);
            // The checkpoint it names exists, is valid and holds the step it stopped at (nothing was applied).
            Assert.NotEmpty(new CheckpointStore(dir).List());
            var snapshot = new CheckpointStore(dir).LoadNewestValid(runId, warning => Assert.Fail(warning));
            Assert.NotNull(snapshot);
            Assert.Equal(0, snapshot.Header.Step);
            Assert.Contains("checkpointed step 0", outcome.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
