using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Cluster;
using DistributedBackprop.Cluster.Hosting;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.InProcessCluster;

/// <summary>Whole runs over three real cluster nodes in one process; alone, so no other test starves their heartbeats.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class InProcessClusterCollection
{
    public const string Name = "in-process cluster";
}

/// <summary>
/// Three <see cref="ClusterNode"/>s on 127.0.0.1 (port 0): the first founds the cluster, the others join it. The
/// coordinator's weights must equal the single-process trainer's bit for bit, with the workers spread over the nodes.
/// </summary>
[Collection(InProcessClusterCollection.Name)]
public sealed class ThreeNodeClusterTests
{
    private static readonly TimeSpan RunDeadline = TimeSpan.FromMinutes(4);

    /// <summary>Records every UnreachableMember a node's system reports.</summary>
    private sealed class UnreachableWatch : ReceiveActor
    {
        public UnreachableWatch(ConcurrentQueue<string> seen)
        {
            var cluster = Akka.Cluster.Cluster.Get(Context.System);
            Receive<ClusterEvent.UnreachableMember>(u =>
                seen.Enqueue($"{cluster.SelfAddress} saw {u.Member.Address} unreachable"));
            cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
                typeof(ClusterEvent.UnreachableMember));
        }
    }

    private sealed record Trained(JobOutcome Coordinator, IReadOnlyList<JobOutcome> All, IReadOnlyList<string> Unreachable);

    /// <summary>Starts three nodes over their own copies of the data, awaits the end on all of them, disposes them.</summary>
    private static async Task<Trained> TrainOnThreeNodes(TrainingOptions options, Func<DataSplit> data)
    {
        var nodes = new List<ClusterNode>();
        var unreachable = new ConcurrentQueue<string>();
        using var cancel = new CancellationTokenSource(RunDeadline);
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var context = new NodeContext(new JobSpec(options, data(), new JobOutputs(null, null, MinNodes: 3, Nodes: 3),
                    localWorkers: 1));
                var settings = new ClusterNodeSettings
                {
                    Port = 0,
                    Seeds = i == 0 ? [] : [nodes[0].Address.ToString()],
                };
                var node = await ClusterNode.StartAsync(settings, context, cancel.Token);
                nodes.Add(node);
                node.System.ActorOf(Props.Create(() => new UnreachableWatch(unreachable)), "unreachable-watch");
            }
            var outcomes = await Task.WhenAll(nodes.Select(n => n.Finished)).WaitAsync(RunDeadline);
            Assert.All(outcomes, o => Assert.True(o.Status == JobStatus.Finished, o.Message));
            // Only the node hosting the coordinator (the oldest, the first) has the summary and result.
            var coordinator = Assert.Single(outcomes, o => o.Result is not null);
            return new Trained(coordinator, outcomes, unreachable.ToList());
        }
        finally
        {
            // The coordinator's node leaves last, so the singleton does not move and start the job again.
            await Task.WhenAll(nodes.Skip(1).Select(n => n.DisposeAsync().AsTask()));
            if (nodes.Count > 0)
            {
                await nodes[0].DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Three_nodes_train_the_local_trainers_weights_bit_for_bit_with_workers_on_several_nodes()
    {
        var options = new TrainingOptions
        {
            Layers = "784-32-10",
            Batch = 240,
            Slices = 6,
            Epochs = 1,
            Workers = 3,
            Threads = 1,
        };
        var expected = new LocalTrainer(TrainingSetup.Create(options, EmbeddedSample.Load())).Run();

        var trained = await TrainOnThreeNodes(options, EmbeddedSample.Load);

        Assert.Equal(expected.WeightsSha256, trained.Coordinator.Result!.WeightsSha256);
        Assert.Equal(expected.WeightsSha256, trained.Coordinator.Summary!["weights_sha256"]!.GetValue<string>());
        Assert.Equal(expected.Steps, trained.Coordinator.Result.Steps);
        var placement = trained.Coordinator.Summary["placement"]!.AsObject();
        Assert.Equal(3, placement.Count);
        Assert.True(placement.Select(p => p.Value!.GetValue<string>()).Distinct().Count() > 1,
            $"all workers on one node: {placement.ToJsonString()}");
        Assert.Empty(trained.Unreachable);
    }

    [Fact]
    public async Task A_model_of_several_megabytes_trains_on_three_nodes_without_any_node_marked_unreachable()
    {
        // 784-1024-512-10: 1,333,770 parameters, 5.3 MB per weights version and per gradient sum.
        var options = new TrainingOptions
        {
            Layers = "784-1024-512-10",
            Batch = 200,
            Slices = 2,
            Epochs = 1,
            Workers = 3,
            Threads = 1,
        };
        // 600 training rows: three steps, each broadcasting 5.3 MB to two remote nodes and returning sums from them.
        static DataSplit Small()
        {
            var all = EmbeddedSample.Load();
            return new DataSplit(all.Train.Rows(0, 600, "train subset"), all.Test.Rows(0, 300, "test subset"));
        }
        var expected = new LocalTrainer(TrainingSetup.Create(options, Small())).Run();

        var trained = await TrainOnThreeNodes(options, Small);

        Assert.Empty(trained.Unreachable);
        Assert.Equal(expected.WeightsSha256, trained.Coordinator.Result!.WeightsSha256);
        Assert.Equal(3, trained.Coordinator.Result.Steps);
        var placement = trained.Coordinator.Summary!["placement"]!.AsObject();
        Assert.True(placement.Select(p => p.Value!.GetValue<string>()).Distinct().Count() > 1,
            $"all workers on one node: {placement.ToJsonString()}");
        // The weights really crossed the network (to the two other nodes' caches).
        Assert.True(trained.Coordinator.Summary["bytes_per_step"]!.GetValue<double>() > 4e6,
            trained.Coordinator.Summary.ToJsonString());
        // The star: the coordinator's node moves every tensor byte, each other node its own weights and results.
        var perNode = trained.Coordinator.Summary["bytes_per_node_per_step"]!.AsObject();
        Assert.Equal(3, perNode.Count);
        var busiest = trained.Coordinator.Summary["busiest_node_bytes_per_step"]!.GetValue<double>();
        Assert.Equal(trained.Coordinator.Summary["bytes_per_step"]!.GetValue<double>(), busiest);
        Assert.Equal(busiest, perNode.Where(p => p.Value!.GetValue<double>() < busiest).Sum(p => p.Value!.GetValue<double>()), 6);
    }
}
