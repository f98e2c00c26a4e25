using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Cluster.Sharding;
using Akka.Discovery.Config.Hosting;
using Akka.Discovery.KubernetesApi;
using Akka.Event;
using Akka.Hosting;
using Akka.Management.Cluster.Bootstrap;
using Akka.Remote.Hosting;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Cluster.Workers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace DistributedBackprop.Cluster.Hosting;

/// <summary>How a node finds the cluster: listed seeds (none: found a cluster), or Akka.Management cluster bootstrap.</summary>
public enum Discovery
{
    /// <summary>Join <see cref="ClusterNodeSettings.Seeds"/>; with none, this node founds the cluster.</summary>
    Seeds,
    /// <summary>Cluster bootstrap with contact points listed in configuration (<see cref="ClusterNodeSettings.ContactEndpoints"/>).</summary>
    Config,
    /// <summary>Cluster bootstrap with contact points from the Kubernetes API (pods matching the label selector).</summary>
    Kubernetes,
}

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
    public int MaxShards { get; init; } = JobSpec.MaxWorkers;
    public string LogLevel { get; init; } = "WARNING";

    /// <summary>
    /// Failure detection and downing, tuned for training (Akka's defaults take ~3 s + 20 s + 20 s to replace a lost
    /// coordinator): a node silent for ~3 s is unreachable; the Split Brain Resolver (keep-majority) downs the minority
    /// once membership has been stable for <see cref="StableAfter"/>; the singleton moves after the removal margin.
    /// </summary>
    public TimeSpan AcceptableHeartbeatPause { get; init; } = TimeSpan.FromSeconds(3);
    public TimeSpan StableAfter { get; init; } = TimeSpan.FromSeconds(4);
    public TimeSpan DownRemovalMargin { get; init; } = TimeSpan.FromSeconds(1);

    public Discovery Discovery { get; init; } = Discovery.Seeds;
    /// <summary>Akka.Management's HTTP port (cluster bootstrap probes each contact point there).</summary>
    public int ManagementPort { get; init; } = 8558;
    /// <summary>The service bootstrap looks up; with Kubernetes it fills the label selector's {0}.</summary>
    public string ServiceName { get; init; } = "distbp";
    /// <summary>Contact points bootstrap waits for before the lowest-addressed one founds the cluster.</summary>
    public int RequiredContactPoints { get; init; } = 1;
    /// <summary>Config discovery: the management endpoints (host:port) of all the nodes.</summary>
    public IReadOnlyList<string> ContactEndpoints { get; init; } = [];
    /// <summary>Kubernetes discovery: the pod label selector; {0} is the service name.</summary>
    public string PodLabelSelector { get; init; } = "app={0}";
    /// <summary>A PKCS#12 file: when set, Akka remoting runs over TLS with this certificate (every node needs one the
    /// others trust).</summary>
    public string? TlsCertificatePath { get; init; }
    public string? TlsCertificatePassword { get; init; }

    /// <summary>
    /// The dedicated TCP channel for tensors (<see cref="DataChannel"/>); off, every message goes over Akka.Remote.
    /// With <see cref="TlsCertificatePath"/> it runs over TLS with the same certificate. Off in these settings;
    /// `distbp node` (and so simulate, compose and Kubernetes) turns it on unless <c>--data-channel off</c>, while
    /// `train`'s one-node cluster has no peer to use it with.
    /// </summary>
    public bool EnableDataChannel { get; init; }
    /// <summary>The data channel's port on <see cref="Hostname"/>; 0 picks a free one (fix it where it must be exposed).</summary>
    public int DataPort { get; init; }

    /// <summary>True when this node runs a data channel.</summary>
    public bool UsesDataChannel => EnableDataChannel;

    /// <summary>
    /// The secret the nodes of one cluster share: every data-channel connection proves it (<see cref="DataChannelHandshake"/>).
    /// Null: the channel accepts any current member unauthenticated (a warning says so).
    /// </summary>
    public byte[]? ClusterSecret { get; init; }

    /// <summary>
    /// Chaos testing only: wraps the TCP transport in Akka's throttler adapter (<c>trttl</c>), so a test can blackhole
    /// this node's associations through <c>RemoteTransport.ManagementCommand(new SetThrottle(...))</c>.
    /// </summary>
    public bool EnableThrottler { get; init; }
}

/// <summary>A host lifetime that reacts to no signal: the distbp command that owns the node stops it.</summary>
internal sealed class CommandLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>The tags of the two Akka.Hosting health checks every node registers (liveness and readiness probes).</summary>
public static class HealthTags
{
    public const string Live = "live";
    public const string Ready = "ready";
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
    public Task<JobOutcome> Finished => Context.Outcome;

    /// <param name="configureHost">adds to the node's host (the node command's health and metrics endpoints).</param>
    public static async Task<ClusterNode> StartAsync(ClusterNodeSettings settings, NodeContext context,
        CancellationToken cancel = default, Action<IHostBuilder>? configureHost = null)
    {
        var hostBuilder = new HostBuilder()
            .ConfigureServices(services =>
            {
                // The command decides when the node stops (its own SIGTERM/Ctrl-C handling, then DisposeAsync); the
                // default console lifetime would also stop the host on SIGTERM, racing the command's own handling.
                services.AddSingleton<IHostLifetime, CommandLifetime>();
                services.AddAkka(settings.SystemName, builder => Configure(builder, settings, context));
            });
        configureHost?.Invoke(hostBuilder);
        var host = hostBuilder.Build();
        await host.StartAsync(cancel);
        var node = new ClusterNode(host, context);
        // Downed by the Split Brain Resolver (or stopped otherwise): the node's part in the job is over; say so rather
        // than wait for a coordinator it can no longer reach.
        _ = node.System.WhenTerminated.ContinueWith(_ => context.Ended(new JobOutcome(JobStatus.Failed,
            "this node's actor system stopped: it was removed from the cluster (downed) or shut down")), TaskScheduler.Default);
        if (settings.Discovery != Discovery.Seeds)
        {
            // Routes() is how Akka.Management hands bootstrap its own base URI (the self contact point); the routes it
            // returns are served by Kestrel instead (BootstrapContactPoint).
            var bootstrap = ClusterBootstrap.Get(node.System);
            _ = bootstrap.Routes(Akka.Management.Dsl.ManagementRouteProviderSettings.Create(
                new Uri($"http://{settings.PublicHostname ?? settings.Hostname}:{settings.ManagementPort}"), true));
            await bootstrap.Start();
        }
        else if (settings.Seeds.Count == 0)
        {
            var cluster = Akka.Cluster.Cluster.Get(node.System);
            await cluster.JoinAsync(cluster.SelfAddress, cancel);
        }
        return node;
    }

    /// <summary>Akka remoting's TLS settings, written out rather than left to its defaults (the same values).</summary>
    private const string TlsHocon = """
        akka.remote.dot-netty.tcp.ssl.require-mutual-authentication = true
        akka.remote.dot-netty.tcp.ssl.validate-certificate-hostname = false
        """;

    private static void Configure(AkkaConfigurationBuilder builder, ClusterNodeSettings settings, NodeContext context)
    {
        var remote = new RemoteOptions
        {
            HostName = settings.Hostname,
            Port = settings.Port,
            PublicHostName = settings.PublicHostname,
            MaxFrameSize = RemotingSettings.FrameBytes,
            SendBufferSize = RemotingSettings.FrameBytes,
            ReceiveBufferSize = RemotingSettings.FrameBytes,
        };
        var certificate = settings.TlsCertificatePath is { } path
            ? X509CertificateLoader.LoadPkcs12FromFile(path, settings.TlsCertificatePassword)
            : null;
        if (certificate is not null)
        {
            // Every association is TLS, validated against the trust store (the system's, or SSL_CERT_FILE's): a node
            // without a trusted certificate is refused. Written out rather than left to Akka's defaults: mutual TLS
            // (both ends present the certificate), validation on, no hostname check (pods are addressed by IP).
            remote.EnableSsl = true;
            remote.Ssl = new SslOptions
            {
                X509Certificate = certificate,
                SuppressValidation = false,
            };
        }
        // run-by-clr-shutdown-hook off: SIGTERM and Ctrl-C belong to the process (Program.cs cancels, and the node leaves
        // as it is disposed). Akka's own ProcessExit hook raced that path and stopped the actor system first, so that a
        // terminated node (a deleted pod) reported "actor system stopped" with exit 1 instead of 143.
        // Sharding's coordinator state in plain majorities (Akka's default asks for majority + 3 on writes and + 5 on
        // reads, i.e. every node of a small cluster): with one node lost, re-homing its workers, a new coordinator's start
        // and the hand-offs as the job ends all stalled on the 5 s update timeout until the lost node was removed. The
        // timeout itself is 2 s (a write on a healthy cluster takes milliseconds; a failed one is retried): the last
        // node's shard coordinator still waited out one failed write as it stopped at the job's end.
        // down-all-when-unstable off: Akka downs every node when reachability keeps changing for stable-after plus 3/4 of
        // it (7 s here). Under a burst of faults (a node killed, another cut off for 2 s, a restarted node joining) that
        // ended the whole job although a majority was alive; keep-majority decides once the picture is stable instead,
        // and the step loop goes on meanwhile (an unreachable node's workers lose their slices to live ones).
        // Singleton hand-over: a leaving oldest node offers its singletons to the next oldest member for (retries - 3)
        // × 500 ms, then stops them anyway. Akka's 15 retries made the coordinator's node, leaving last at the job's end,
        // spend 6 s offering them to a member that was downed (a node frozen until the end) but not yet removed. A live
        // next oldest answers within a gossip round; one that does not take over only takes over once the old one is
        // removed, so fewer retries are as safe.
        builder
            .AddHocon($$"""
                akka.loglevel = {{settings.LogLevel}}
                akka.stdout-loglevel = {{settings.LogLevel}}
                akka.log-dead-letters = off
                akka.log-dead-letters-during-shutdown = off
                akka.cluster.sharding.distributed-data.durable.keys = []
                akka.coordinated-shutdown.exit-clr = off
                akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
                akka.coordinated-shutdown.phases.cluster-sharding-shutdown-region.timeout = 3s
                akka.cluster.failure-detector.heartbeat-interval = 1s
                akka.cluster.failure-detector.acceptable-heartbeat-pause = {{(int)settings.AcceptableHeartbeatPause.TotalMilliseconds}}ms
                akka.cluster.downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
                akka.cluster.split-brain-resolver.active-strategy = keep-majority
                akka.cluster.split-brain-resolver.stable-after = {{(int)settings.StableAfter.TotalMilliseconds}}ms
                akka.cluster.split-brain-resolver.down-all-when-unstable = off
                akka.cluster.down-removal-margin = {{(int)settings.DownRemovalMargin.TotalMilliseconds}}ms
                akka.cluster.singleton.hand-over-retry-interval = 500ms
                akka.cluster.singleton.min-number-of-hand-over-retries = 6
                akka.cluster.sharding.retry-interval = 500ms
                akka.cluster.sharding.coordinator-state.write-majority-plus = 0
                akka.cluster.sharding.coordinator-state.read-majority-plus = 0
                akka.cluster.sharding.updating-state-timeout = 2s
                {{(certificate is not null ? TlsHocon : "")}}
                {{(settings.EnableThrottler ? "akka.remote.dot-netty.tcp.applied-adapters = [trttl]" : "")}}
                """, HoconAddMode.Prepend)
            .WithRemoting(remote)
            .WithWireRemotingSettings()
            .WithClustering(new ClusterOptions
            {
                SeedNodes = settings.Seeds.ToArray(),
                Roles = settings.Roles.ToArray(),
            })
            .WithActorSystemLivenessCheck(tags: [HealthTags.Live])
            .WithAkkaClusterReadinessCheck(tags: [HealthTags.Ready])
            .WithWireSerializer()
            .WithActors((system, registry) =>
            {
                if (settings.UsesDataChannel)
                {
                    var channel = DataChannel.Start(system, new DataChannelSettings
                    {
                        BindHostname = settings.Hostname,
                        Port = settings.DataPort,
                        Secret = settings.ClusterSecret,
                        Certificate = certificate,
                        MaxFrameBytes = context.Spec.LargestMessageBytes,
                    });
                    if (settings.ClusterSecret is null)
                    {
                        system.Log.Warning("data channel: no cluster secret: any process that reaches port {0} and names a member is believed",
                            channel.Endpoint.Port);
                    }
                    system.ActorOf(Props.Create(() => new DataEndpointExchange(channel)), DataEndpointExchange.Name);
                }
                var cache = system.ActorOf(Props.Create(() => new WeightsCache(context.Spec)), "weights-cache");
                registry.Register<WeightsCacheActor>(cache);
                registry.Register<RangeOwnerActor>(system.ActorOf(Props.Create(() => new Aggregation.RangeOwner(context.Spec)),
                    "range-owner"));
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
                    Props.Create(() => new TrainingCoordinator(context, registry.Get<WorkerRegion>(), registry.Get<WeightsCacheActor>())),
                new ClusterSingletonOptions { Role = "worker", LogSingletonIdentificationFailure = false },
                createProxyToo: true)
            .WithActors((system, registry) =>
            {
                system.ActorOf(Props.Create(() => new NodeAgent(context, registry.Get<CoordinatorSingleton>())),
                    "node-agent");
            });
        if (settings.Discovery != Discovery.Seeds)
        {
            ConfigureBootstrap(builder, settings);
        }
    }

    /// <summary>
    /// Cluster bootstrap (Akka.Management): each node asks the discovered contact points for their seed nodes at
    /// /bootstrap/seed-nodes on the management port; once RequiredContactPoints are seen and stable, the lowest address
    /// founds the cluster and the others join it (docs/akka-notes.md, Kubernetes). Akka.Management's own HTTP server does not
    /// start here (it needs Ceen.Httpd 0.9.9; only 0.9.10, with another ListenAsync signature, restores), so the node
    /// command serves that route on Kestrel (<see cref="BootstrapContactPoint"/>) and <see cref="StartAsync"/> starts
    /// bootstrap with that self contact point.
    /// </summary>
    private static void ConfigureBootstrap(AkkaConfigurationBuilder builder, ClusterNodeSettings settings)
    {
        builder.WithClusterBootstrap(options =>
        {
            options.NewClusterEnabled = true;
            var discovery = options.ContactPointDiscovery;
            discovery.ServiceName = settings.ServiceName;
            discovery.DiscoveryMethod = settings.Discovery == Discovery.Kubernetes ? "kubernetes-api" : "config";
            if (settings.Discovery == Discovery.Kubernetes)
            {
                discovery.PortName = "management";
            }
            discovery.RequiredContactPointsNr = settings.RequiredContactPoints;
            discovery.ContactWithAllContactPoints = true;
            discovery.StableMargin = TimeSpan.FromSeconds(3);
            discovery.Interval = TimeSpan.FromSeconds(1);
            options.ContactPoint.FallbackPort = settings.ManagementPort;
        }, autoStart: false);
        if (settings.Discovery == Discovery.Kubernetes)
        {
            builder.WithKubernetesDiscovery(new KubernetesDiscoveryOptions { PodLabelSelector = settings.PodLabelSelector });
        }
        else
        {
            builder.WithConfigDiscovery(new ConfigServiceDiscoveryOptions
            {
                Services = [new Service { Name = settings.ServiceName, Endpoints = settings.ContactEndpoints.ToArray() }],
            });
        }
    }

    /// <summary>True once this node is an Up member; false when that did not happen within the timeout.</summary>
    public async Task<bool> WaitUntilUpAsync(TimeSpan timeout, CancellationToken cancel = default) =>
        await JoinAsync(timeout, cancel) == JoinOutcome.Up;

    /// <summary>How joining the cluster ended.</summary>
    public enum JoinOutcome
    {
        /// <summary>This node is an Up member.</summary>
        Up,
        /// <summary>Downed or removed before it was up (the cluster still held an earlier incarnation at this address).</summary>
        Removed,
        /// <summary>No seed or contact point answered in time.</summary>
        TimedOut,
    }

    /// <summary>
    /// Waits until this node is Up, or is removed (or its actor system stops) first, or the timeout passes. A node that
    /// restarts at its old address while the cluster is still downing the old incarnation can be handed the "downed"
    /// gossip meant for it: it then never gets up, and used to wait out the whole join timeout (30 s).
    /// </summary>
    public async Task<JoinOutcome> JoinAsync(TimeSpan timeout, CancellationToken cancel = default)
    {
        var cluster = Akka.Cluster.Cluster.Get(System);
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var removed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        cluster.RegisterOnMemberRemoved(() => removed.TrySetResult());
        var finished = await Task.WhenAny(up.Task, removed.Task, System.WhenTerminated, Task.Delay(timeout, cancel));
        return finished == up.Task ? JoinOutcome.Up
            : finished == removed.Task || finished == System.WhenTerminated ? JoinOutcome.Removed
            : JoinOutcome.TimedOut;
    }

    /// <summary>
    /// The job is over for the whole cluster: stops this node's worker region at once instead of handing its shards
    /// off as it leaves. Every node is about to exit, so a hand-off has nowhere useful to go; after a lost node it even
    /// stalled (the shard coordinator could not reach a majority to record it) until the 3 s phase timeout.
    /// </summary>
    public async Task StopWorkerRegionAsync(TimeSpan timeout)
    {
        if (System.WhenTerminated.IsCompleted)
        {
            return;
        }
        try
        {
            await ActorRegistry.For(System).Get<WorkerRegion>().GracefulStop(timeout);
        }
        catch (TaskCanceledException)
        {
            // Not stopped in time: CoordinatedShutdown's own region phase takes over, bounded as before.
        }
    }

    /// <summary>
    /// The node that hosted the coordinator leaves last, so the singleton does not move to a node that is still
    /// shutting down and start the job again. Only members that can still leave are waited for: an unreachable or
    /// downed one never will, and a node that was itself downed has no cluster left to wait on.
    /// </summary>
    public async Task WaitForOthersToLeaveAsync(TimeSpan timeout)
    {
        var cluster = Akka.Cluster.Cluster.Get(System);
        var deadline = DateTime.UtcNow + timeout;
        bool OthersCanStillLeave()
        {
            var state = cluster.State;
            var unreachable = state.Unreachable.Select(m => m.Address).ToHashSet();
            return !cluster.IsTerminated && cluster.SelfMember.Status is MemberStatus.Up or MemberStatus.Leaving
                   && state.Members.Any(m => m.Address != cluster.SelfAddress && m.Status != MemberStatus.Down
                                             && !unreachable.Contains(m.Address));
        }
        while (DateTime.UtcNow < deadline && OthersCanStillLeave())
        {
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// Chaos: cuts this node off from every other member, both directions, for <paramref name="duration"/>, then heals
    /// (Akka's throttler transport adapter; needs <see cref="ClusterNodeSettings.EnableThrottler"/>).
    /// </summary>
    public async Task PartitionAsync(TimeSpan duration)
    {
        var transport = ((Akka.Remote.RemoteActorRefProvider)((ExtendedActorSystem)System).Provider).Transport;
        var self = Akka.Cluster.Cluster.Get(System).SelfAddress;
        var peers = Akka.Cluster.Cluster.Get(System).State.Members.Select(m => m.Address).Where(a => a != self).ToList();
        var channel = DataChannel.For(System);
        channel?.Cut(peers, duration); // the data channel would otherwise carry tensors straight through the partition
        try
        {
            foreach (var peer in peers)
            {
                await transport.ManagementCommand(new Akka.Remote.Transport.SetThrottle(peer,
                    Akka.Remote.Transport.ThrottleTransportAdapter.Direction.Both, Akka.Remote.Transport.Blackhole.Instance));
            }
            await Task.Delay(duration);
            foreach (var peer in peers)
            {
                await transport.ManagementCommand(new Akka.Remote.Transport.SetThrottle(peer,
                    Akka.Remote.Transport.ThrottleTransportAdapter.Direction.Both, Akka.Remote.Transport.Unthrottled.Instance));
            }
        }
        finally
        {
            // Whatever the throttler did (a command for a peer that has just died can fail), the channel heals: a cut
            // left in place would drop this node's weights for good, every pull included.
            channel?.Restore(peers);
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
