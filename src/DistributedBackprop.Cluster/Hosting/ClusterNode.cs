using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using Akka.Remote.Hosting;
using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Cluster.Wire;
using DistributedBackprop.Cluster.Workers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace DistributedBackprop.Cluster.Hosting;

/// <summary>Where a node listens and whom it joins. No seeds: the node founds a cluster of its own.</summary>
public sealed record ClusterNodeSettings
{
    public string SystemName { get; init; } = "distbp";
    public string Hostname { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port.</summary>
    public int Port { get; init; }
    public string? PublicHostname { get; init; }
    public IReadOnlyList<string> Seeds { get; init; } = [];
    public IReadOnlyList<string> Roles { get; init; } = ["worker"];
    /// <summary>Shards of the worker region; fixed for the cluster's life (about 10 per node at most).</summary>
    public int MaxShards { get; init; } = 100;
    public string LogLevel { get; init; } = "WARNING";

    /// <summary>
    /// Failure detection and downing, tuned for training (Akka's defaults take ~3 s + 20 s + 20 s to replace a lost
    /// coordinator): a node silent for ~3 s is unreachable; the Split Brain Resolver (keep-majority) downs the minority
    /// once membership has been stable for <see cref="StableAfter"/>; the singleton moves after the removal margin.
    /// </summary>
    public TimeSpan AcceptableHeartbeatPause { get; init; } = TimeSpan.FromSeconds(3);
    public TimeSpan StableAfter { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan DownRemovalMargin { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Chaos testing only: wraps the TCP transport in Akka's throttler adapter (<c>trttl</c>), so a test can blackhole
    /// this node's associations through <c>RemoteTransport.ManagementCommand(new SetThrottle(...))</c>.
    /// </summary>
    public bool EnableThrottler { get; init; }
}

/// <summary>
/// One cluster node: remoting, clustering, the wire serializer, this node's weights cache and agent, the worker shard
/// region, and the coordinator singleton (with its proxy), all configured in code through Akka.Hosting.
/// </summary>
public sealed class ClusterNode : IAsyncDisposable
{
    private readonly IHost _host;

    private ClusterNode(IHost host, NodeContext context)
    {
        _host = host;
        Context = context;
        System = host.Services.GetRequiredService<ActorSystem>();
    }

    public NodeContext Context { get; }
    public ActorSystem System { get; }
    public Address Address => Akka.Cluster.Cluster.Get(System).SelfAddress;
    public Task<JobOutcome> Finished => Context.Finished.Task;

    public static async Task<ClusterNode> StartAsync(ClusterNodeSettings settings, NodeContext context,
        CancellationToken cancel = default)
    {
        var host = new HostBuilder()
            .ConfigureServices(services => services.AddAkka(settings.SystemName, builder => Configure(builder, settings, context)))
            .Build();
        await host.StartAsync(cancel);
        var node = new ClusterNode(host, context);
        if (settings.Seeds.Count == 0)
        {
            var cluster = Akka.Cluster.Cluster.Get(node.System);
            await cluster.JoinAsync(cluster.SelfAddress, cancel);
        }
        return node;
    }

    private static void Configure(AkkaConfigurationBuilder builder, ClusterNodeSettings settings, NodeContext context)
    {
        builder
            .AddHocon($$"""
                akka.loglevel = {{settings.LogLevel}}
                akka.stdout-loglevel = {{settings.LogLevel}}
                akka.log-dead-letters = off
                akka.log-dead-letters-during-shutdown = off
                akka.cluster.sharding.distributed-data.durable.keys = []
                akka.coordinated-shutdown.exit-clr = off
                akka.cluster.failure-detector.heartbeat-interval = 1s
                akka.cluster.failure-detector.acceptable-heartbeat-pause = {{(int)settings.AcceptableHeartbeatPause.TotalMilliseconds}}ms
                akka.cluster.downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
                akka.cluster.split-brain-resolver.active-strategy = keep-majority
                akka.cluster.split-brain-resolver.stable-after = {{(int)settings.StableAfter.TotalMilliseconds}}ms
                akka.cluster.down-removal-margin = {{(int)settings.DownRemovalMargin.TotalMilliseconds}}ms
                akka.cluster.singleton.hand-over-retry-interval = 500ms
                akka.cluster.sharding.retry-interval = 500ms
                {{(settings.EnableThrottler ? "akka.remote.dot-netty.tcp.applied-adapters = [trttl]" : "")}}
                """, HoconAddMode.Prepend)
            .WithRemoting(new RemoteOptions
            {
                HostName = settings.Hostname,
                Port = settings.Port,
                PublicHostName = settings.PublicHostname,
                MaxFrameSize = RemotingSettings.FrameBytes,
                SendBufferSize = RemotingSettings.FrameBytes,
                ReceiveBufferSize = RemotingSettings.FrameBytes,
            })
            .WithWireRemotingSettings()
            .WithClustering(new ClusterOptions
            {
                SeedNodes = settings.Seeds.ToArray(),
                Roles = settings.Roles.ToArray(),
            })
            .WithWireSerializer()
            .WithActors((system, registry) =>
            {
                var cache = system.ActorOf(Props.Create(() => new WeightsCache(context)), "weights-cache");
                registry.Register<WeightsCacheActor>(cache);
            })
            .WithShardRegion<WorkerRegion>("worker",
                (system, registry, resolver) => entityId =>
                    Props.Create(() => new WorkerEntity(entityId, context, registry.Get<WeightsCacheActor>())),
                new WorkerMessageExtractor(settings.MaxShards),
                new ShardOptions
                {
                    Role = "worker",
                    StateStoreMode = StateStoreMode.DData,
                    RememberEntities = false,
                    // A handed-off worker finishes its current job first (the stop waits in its stash).
                    HandOffStopMessage = StopWorker.Instance,
                })
            .WithSingleton<CoordinatorSingleton>("coordinator",
                (system, registry, resolver) =>
                    Props.Create(() => new TrainingCoordinator(context, registry.Get<WorkerRegion>())),
                new ClusterSingletonOptions { Role = "worker", LogSingletonIdentificationFailure = false },
                createProxyToo: true)
            .WithActors((system, registry) =>
            {
                system.ActorOf(Props.Create(() => new NodeAgent(context, registry.Get<CoordinatorSingleton>())),
                    "node-agent");
            });
    }

    /// <summary>True once this node is an Up member; false when that did not happen within the timeout.</summary>
    public async Task<bool> WaitUntilUpAsync(TimeSpan timeout, CancellationToken cancel = default)
    {
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Akka.Cluster.Cluster.Get(System).RegisterOnMemberUp(() => up.TrySetResult());
        var finished = await Task.WhenAny(up.Task, Task.Delay(timeout, cancel));
        return finished == up.Task;
    }

    /// <summary>
    /// The node that hosted the coordinator leaves last, so the singleton does not move to a node that is still
    /// shutting down and start the job again.
    /// </summary>
    public async Task WaitForOthersToLeaveAsync(TimeSpan timeout)
    {
        var cluster = Akka.Cluster.Cluster.Get(System);
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && cluster.State.Members.Count(m => m.Address != cluster.SelfAddress) > 0)
        {
            await Task.Delay(50);
        }
    }

    /// <summary>Leaves the cluster gracefully (CoordinatedShutdown) and stops the host.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            _host.Dispose();
        }
    }
}
