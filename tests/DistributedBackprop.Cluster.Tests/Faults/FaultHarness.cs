using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Remote;
using Akka.Remote.Transport;
using DistributedBackprop.Cluster.Hosting;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Chaos;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Faults;

/// <summary>Fault runs start and kill whole cluster nodes in one process: alone, so nothing else starves their heartbeats.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FaultCollection
{
    public const string Name = "faults";
}

/// <summary>
/// Records the steps a coordinator applies on one node and can hold that coordinator inside <see cref="OnStep"/> at a
/// given step (its actor thread blocked) until the test has injected the fault, so the fault lands mid-run however fast
/// the steps are.
/// </summary>
internal sealed class StepGate(long holdAt = -1) : ITrainingObserver
{
    private static readonly TimeSpan MaxHold = TimeSpan.FromSeconds(60);
    private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _held;

    public ConcurrentQueue<long> Steps { get; } = new();
    public ConcurrentQueue<string> Warnings { get; } = new();

    /// <summary>Completes when the coordinator has applied step <c>holdAt</c> and is held.</summary>
    public Task Reached => _reached.Task;

    public void Release() => _release.TrySetResult();

    public void OnStep(StepReport report, int epoch, int stepInEpoch, int stepsPerEpoch, double samplesPerSecond)
    {
        Steps.Enqueue(report.Step);
        if (holdAt >= 0 && report.Step >= holdAt && Interlocked.Exchange(ref _held, 1) == 0)
        {
            _reached.TrySetResult();
            // Bounded: a test that fails before releasing must not freeze the coordinator for ever.
            _release.Task.Wait(MaxHold);
        }
    }

    public void OnEpoch(int epoch, double trainLoss, Evaluation test)
    {
    }

    public void OnWarning(Core.Health.HealthWarning warning) => Warnings.Enqueue(warning.Text);
}

/// <summary>Small runs, fast failure detection and the helpers every fault test shares.</summary>
internal static class FaultHarness
{
    public static readonly TimeSpan RunDeadline = TimeSpan.FromSeconds(double.Parse(Environment.GetEnvironmentVariable("FAULTS_DEADLINE_S") ?? "180"));

    /// <summary>2,000 training rows, batch 120: 16 steps an epoch, 32 in all; each step a few milliseconds.</summary>
    public static TrainingOptions Options(string? checkpointDir = null, int checkpointEvery = 0) => new()
    {
        Layers = "784-32-10",
        Batch = 120,
        Slices = 6,
        Epochs = 2,
        Workers = 3,
        Threads = 1,
        CheckpointDir = checkpointDir,
        CheckpointEvery = checkpointEvery,
    };

    public static DataSplit Data()
    {
        var all = EmbeddedSample.Load();
        return new DataSplit(all.Train.Rows(0, 2000, "train subset"), all.Test.Rows(0, 500, "test subset"));
    }

    /// <summary>The oracle: the single-process trainer's final weights for the same options and data.</summary>
    public static TrainingResult Oracle(TrainingOptions options) =>
        new LocalTrainer(TrainingSetup.Create(options, Data())).Run();

    /// <summary>A node silent for ~2 s is unreachable, the minority is downed 2 s later, the singleton moves 1 s after.</summary>
    public static ClusterNodeSettings Fast(IReadOnlyList<ClusterNode> started, bool throttler = false) => new()
    {
        Port = 0,
        Seeds = started.Count == 0 ? [] : [started[0].Address.ToString()],
        AcceptableHeartbeatPause = TimeSpan.FromSeconds(2),
        StableAfter = TimeSpan.FromSeconds(2),
        DownRemovalMargin = TimeSpan.FromSeconds(1),
        EnableThrottler = throttler,
        // The fault tests run with the data channel (off by default in nodes) so it is tried under every fault;
        // FAULTS_DATA_CHANNEL=off runs them with every tensor on Akka.Remote.
        EnableDataChannel = Environment.GetEnvironmentVariable("FAULTS_DATA_CHANNEL") != "off",
        LogLevel = Environment.GetEnvironmentVariable("FAULTS_LOG") ?? "WARNING",
    };

    public static CoordinatorTuning Tuning(TimeSpan? workerWait = null) => new()
    {
        ResendAfter = TimeSpan.FromMilliseconds(500),
        MinStragglerDelay = TimeSpan.FromMilliseconds(300),
        WorkerWait = workerWait ?? TimeSpan.FromSeconds(60),
    };

    /// <summary>Starts <paramref name="count"/> nodes one after the other (the first is the oldest: it hosts the coordinator).</summary>
    public static async Task<List<ClusterNode>> StartNodes(int count, Func<int, NodeContext> context,
        bool throttler = false, List<ClusterNode>? into = null)
    {
        var nodes = into ?? [];
        using var cancel = new CancellationTokenSource(RunDeadline);
        for (var i = 0; i < count; i++)
        {
            nodes.Add(await ClusterNode.StartAsync(Fast(nodes, throttler), context(i), cancel.Token));
        }
        return nodes;
    }

    public static NodeContext Context(TrainingOptions options, StepGate observer, int minNodes, int nodes,
        FaultInjection? faults = null, TimeSpan? workerWait = null) =>
        new(new JobSpec(options, Data(), new JobOutputs(null, null, minNodes, nodes), localWorkers: 1) { Tuning = Tuning(workerWait) },
            observer)
        {
            ComputedSlicesHook = faults is null ? null : new FaultInjector(faults),
        };

    /// <summary>Disposes every node, tolerating the ones a test already terminated or downed.</summary>
    public static async Task DisposeAll(IEnumerable<ClusterNode> nodes)
    {
        foreach (var node in nodes.Reverse())
        {
            try
            {
                await node.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(40));
            }
            catch (Exception e) when (e is TimeoutException or ObjectDisposedException or InvalidOperationException
                                          or AggregateException or TaskCanceledException)
            {
                // A node killed by the test may refuse a second shutdown; nothing of it is left to clean.
            }
        }
    }

    /// <summary>
    /// Blackholes (or heals) every association of <paramref name="node"/> with <paramref name="peers"/>, both ways, and
    /// cuts (or restores) its data channel to them as <see cref="ClusterNode.PartitionAsync"/> does.
    /// </summary>
    public static async Task Throttle(ClusterNode node, IEnumerable<Address> peers, ThrottleMode mode)
    {
        var transport = ((RemoteActorRefProvider)((ExtendedActorSystem)node.System).Provider).Transport;
        var addresses = peers.ToList();
        var channel = DataChannel.For(node.System);
        if (mode is not Unthrottled)
        {
            channel?.Cut(addresses);
        }
        foreach (var peer in addresses)
        {
            Assert.True(await transport.ManagementCommand(
                new SetThrottle(peer, ThrottleTransportAdapter.Direction.Both, mode)).WaitAsync(TimeSpan.FromSeconds(10)),
                $"the throttler refused {mode} for {peer}");
        }
        if (mode is Unthrottled)
        {
            channel?.Restore(addresses);
        }
    }

    /// <summary>
    /// Waits until every node sees every node Up and reachable. The run starts as soon as the leader has moved the nodes
    /// Up, which can be before the others have heard it; a fault injected then finds the survivors still Joining in
    /// their own view, and the Split Brain Resolver (which counts Up members) downs the survivors instead of the victim.
    /// </summary>
    public static async Task AwaitConvergence(IReadOnlyList<ClusterNode> nodes)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        bool Converged(ClusterNode node)
        {
            var state = Akka.Cluster.Cluster.Get(node.System).State;
            return state.Unreachable.Count == 0 && state.Members.Count(m => m.Status == Akka.Cluster.MemberStatus.Up) == nodes.Count
                   && state.SeenBy.Count == nodes.Count;
        }
        while (!nodes.All(Converged))
        {
            Assert.True(DateTime.UtcNow < deadline, "the cluster did not converge with every node Up within 30 s");
            await Task.Delay(20);
        }
    }

    /// <summary>
    /// A crash, as near as one process gets: <see cref="ActorSystem.Terminate"/> alone runs CoordinatedShutdown (a
    /// graceful leave and shard hand-off), so the node is first cut off from every peer: its goodbyes never arrive and
    /// the others find out only from the failure detector, as after a real crash. Returns the termination.
    /// </summary>
    public static async Task<Task> Crash(ClusterNode node, IEnumerable<ClusterNode> cluster)
    {
        await Throttle(node, cluster.Where(n => n != node).Select(n => n.Address).ToList(), Blackhole.Instance);
        return node.System.Terminate();
    }

    public static IReadOnlyList<JsonObject> Detected(JobOutcome outcome) =>
        outcome.Summary!["faults"]!["detected"]!.AsArray().Select(f => f!.AsObject()).ToList();

    public static string Describe(JobOutcome outcome) => outcome.Summary?["faults"]?.ToJsonString() ?? outcome.Message;

    /// <summary>The node whose coordinator finished the job (the only outcome with a result); fails otherwise.</summary>
    public static async Task<JobOutcome> CoordinatorOutcome(IEnumerable<ClusterNode> survivors)
    {
        var outcomes = await Task.WhenAll(survivors.Select(n => n.Finished)).WaitAsync(RunDeadline);
        Assert.All(outcomes, o => Assert.True(o.Status == JobStatus.Finished, o.Message));
        return Assert.Single(outcomes, o => o.Result is not null);
    }
}
