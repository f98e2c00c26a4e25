using System.Runtime.InteropServices;
using DistributedBackprop.Cluster;
using DistributedBackprop.Cluster.Hosting;
using DistributedBackprop.Core;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Cli;
using DistributedBackprop.Node.Dashboard;
using DistributedBackprop.Node.Http;

namespace DistributedBackprop.Node.Commands;

/// <summary>
/// <c>distbp node</c>: one cluster node (what a compose service or a Kubernetes pod runs). Every node gets the same
/// training options; the coordinator starts the job once <c>--min-nodes</c> members are up, writes <c>--out</c> and
/// <c>--summary-json</c> on the node that hosts it, and then the whole cluster leaves and exits 0.
/// Every option may also come from the environment as DISTBP_NAME (e.g. DISTBP_SEEDS, DISTBP_LR); flags win.
/// </summary>
public static class NodeCommand
{
    public static readonly HashSet<string> NodeValued =
        ["seeds", "hostname", "port", "public-hostname", "roles", "min-nodes", "join-timeout", "log-level", "cluster-name",
            "discovery", "management-port", "service-name", "contact-points", "contact-endpoints", "pod-label-selector",
            "http-port", "http-hostname", "tls-certificate", "tls-certificate-password", "data-port", "data-channel",
            "cluster-secret-file"];

    public const string Help = """
        usage: distbp node [--seeds akka.tcp://distbp@HOST:PORT,...] [--hostname H] [--port P] [--roles worker]
                           [--min-nodes N] [--join-timeout SECONDS] [training options]

          --seeds LIST          seed node addresses; none: this node founds the cluster
          --hostname H          address to bind and advertise (default 127.0.0.1)
          --public-hostname H   address to advertise when it differs from the bound one
          --port P              remoting port (default 0: any free port)
          --data-channel on|off on: tensors travel on their own TCP connections, not Akka remoting (default on; over TLS
                                with --tls-certificate)
          --cluster-secret-file F  the secret every node of the cluster shares (at least 16 bytes; or the secret itself
                                in DISTBP_CLUSTER_SECRET): each data-channel connection proves it
          --data-port P         the data channel's port (default 0: any free port)
          --roles LIST          cluster roles (default worker)
          --min-nodes N         members to wait for before training starts (default 1); --workers (default N) is
                                spread over them, and a node that joins later adds as many as each of them has
          --join-timeout S      give up (exit 2) when the cluster cannot be joined in S seconds (default 30)
          --log-level LEVEL     Akka log level: DEBUG, INFO, WARNING or ERROR (default WARNING)
          --cluster-name NAME   actor system name; nodes of another cluster name are refused (default distbp)
          --discovery NAME      kubernetes | config: form the cluster with Akka.Management cluster bootstrap instead of seeds
          --management-port P   Akka.Management HTTP port that bootstrap probes (default 8558)
          --service-name NAME   the service bootstrap discovers; fills the pod label selector (default distbp)
          --contact-points N    contact points bootstrap waits for before forming the cluster (default --min-nodes)
          --contact-endpoints L config discovery: every node's HOST:MANAGEMENT_PORT, comma-separated
          --pod-label-selector S kubernetes discovery: label selector, {0} is the service name (default app={0})
          --http-port P         serve /healthz/live, /healthz/ready and /metrics on this port (default: off)
          --http-hostname H     address the HTTP port binds (default --hostname)
          --tls-certificate F   PKCS#12 file: Akka remoting over TLS (password: DISTBP_TLS_CERTIFICATE_PASSWORD)
        The node that hosts the coordinator writes the run folder (--run-dir; default runs/<UTC time>-<config hash> in its
        working folder). Give every node the same shared --run-dir, and a coordinator that moves appends to the same files.
        Every option can be given as an environment variable DISTBP_NAME (DISTBP_SEEDS, DISTBP_MIN_NODES, DISTBP_LR ...).

        The dashboard shows the run folder on this node's file system: it has data on the node that hosts the
        coordinator (or where the run folder is a shared volume).
        """ + DashboardOption.Help + TrainingOptionsBinder.Help;

    public const string ParentPidOption = "parent-pid";
    public const string ReportStepsOption = "report-steps";
    public const string ControlStdinOption = "control-stdin";

    public static int Run(IReadOnlyList<string> argv, CancellationToken cancel)
    {
        var valued = TrainingOptionsBinder.Valued.Concat(NodeValued).Concat(DashboardOption.Valued).ToHashSet();
        var argvWithEnvironment = WithEnvironment(argv, valued.Concat(DashboardOption.OptionalValue), TrainingOptionsBinder.Switches);
        // Hidden: the launcher's pid, so that simulate's nodes never outlive it (not taken from the environment).
        valued.Add(ParentPidOption);
        // Hidden, for simulate --chaos: print "step N" after every step; take fault commands on standard input.
        var switches = TrainingOptionsBinder.Switches.Concat([ReportStepsOption, ControlStdinOption]).ToHashSet();
        var args = ParsedArguments.Parse("node", argvWithEnvironment, valued, switches, DashboardOption.OptionalValue);
        if (args.Flag("help"))
        {
            Console.WriteLine(Help);
            return 0;
        }
        var minNodes = args.Int("min-nodes", 1);
        if (minNodes < 1)
        {
            throw new DistbpInputException($"--min-nodes: {minNodes} must be at least 1.");
        }
        var options = RunFolder.WithDefaultCheckpointEvery(
            TrainingOptionsBinder.Bind(args) with { Workers = args.Int("workers", minNodes) }, args);
        options.Validate();
        if (args.Has("resume"))
        {
            throw new DistbpInputException("--resume: a node joins a job; give the run folder as --run-dir (and its checkpoints resume the job).");
        }
        string runDir;
        (options, runDir) = RunFolder.ForNode(options, args.String("run-dir"));
        var port = args.Int("port", 0);
        if (port is < 0 or > 65535)
        {
            throw new DistbpInputException($"--port: {port} is not a TCP port (0 picks a free one).");
        }
        var dataPort = args.Int("data-port", 0);
        if (dataPort is < 0 or > 65535)
        {
            throw new DistbpInputException($"--data-port: {dataPort} is not a TCP port (0 picks a free one).");
        }
        var dataChannel = args.String("data-channel") switch
        {
            "off" => false,
            null or "" or "on" => true,
            var other => throw new DistbpInputException($"--data-channel: '{other}' is not on or off."),
        };
        var joinTimeout = TimeSpan.FromSeconds(args.Int("join-timeout", 30));
        var outPath = args.String("out");
        var summaryPath = args.String("summary-json");
        AtomicFile.CheckWritable(outPath, "out");
        AtomicFile.CheckWritable(summaryPath, "summary-json");
        var seeds = Split(args.String("seeds"));
        // With TLS, Akka.Remote's addresses use the akka.ssl.tcp scheme.
        // With the chaos throttler (simulate --chaos), akka.trttl.tcp.
        var scheme = args.String("tls-certificate") is not null ? "akka.ssl.tcp"
            : args.Flag(ControlStdinOption) ? "akka.trttl.tcp" : "akka.tcp";
        foreach (var seed in seeds)
        {
            if (!Uri.TryCreate(seed, UriKind.Absolute, out var uri) || uri.Scheme != scheme || uri.Port <= 0)
            {
                throw new DistbpInputException($"--seeds: '{seed}' is not a seed address like {scheme}://distbp@10.0.0.5:4053.");
            }
        }

        using var dashboard = DashboardOption.StartIfAsked(args, Console.Out, cancel);
        var raw = TrainingSetup.LoadChecked(options);
        var outputs = new JobOutputs(outPath, summaryPath, minNodes, minNodes) { RunDir = runDir, Command = "node" };
        // simulate --chaos drives this node's faults through its standard input; otherwise nothing touches the workers.
        var faults = args.Flag(ControlStdinOption)
            ? new Chaos.FaultInjector { Report = line => Console.Error.WriteLine(line) }
            : null;
        var context = new NodeContext(new JobSpec(options, raw, outputs, localWorkers: JobSpec.PerNode(options.Workers, minNodes)), Chaos.StepReporter.Wrap(new ProgressDisplay(options.Epochs, Console.Out, Console.Error, interactive: false),
                args.Flag(ReportStepsOption)))
        {
            ComputedSlicesHook = faults,
        };
        var discovery = args.String("discovery") switch
        {
            null or "" or "seeds" => Discovery.Seeds,
            "config" => Discovery.Config,
            "kubernetes" => Discovery.Kubernetes,
            var other => throw new DistbpInputException($"--discovery: '{other}' is not kubernetes or config."),
        };
        var contactEndpoints = Split(args.String("contact-endpoints"));
        if (discovery == Discovery.Config && contactEndpoints.Count == 0)
        {
            throw new DistbpInputException("--contact-endpoints: config discovery needs every node's HOST:PORT (management port).");
        }
        if (discovery != Discovery.Seeds && seeds.Count > 0)
        {
            throw new DistbpInputException("--seeds: give seeds or --discovery, not both.");
        }
        var hostname = args.String("hostname") ?? "127.0.0.1";
        var tlsCertificate = args.String("tls-certificate");
        if (tlsCertificate is not null && !File.Exists(tlsCertificate))
        {
            throw new DistbpInputException($"--tls-certificate: '{tlsCertificate}' does not exist.");
        }
        var settings = new ClusterNodeSettings
        {
            SystemName = args.String("cluster-name") ?? "distbp",
            Hostname = hostname,
            PublicHostname = args.String("public-hostname"),
            Port = port,
            DataPort = dataPort,
            EnableDataChannel = dataChannel,
            Seeds = seeds,
            Roles = Split(args.String("roles")) is { Count: > 0 } roles ? roles : ["worker"],
            LogLevel = args.String("log-level")?.ToUpperInvariant() ?? "WARNING",
            Discovery = discovery,
            ManagementPort = TcpPort(args.Int("management-port", 8558), "management-port"),
            ServiceName = args.String("service-name") ?? "distbp",
            RequiredContactPoints = args.Int("contact-points", minNodes),
            ContactEndpoints = contactEndpoints,
            PodLabelSelector = args.String("pod-label-selector") ?? "app={0}",
            TlsCertificatePath = tlsCertificate,
            TlsCertificatePassword = args.String("tls-certificate-password"),
            ClusterSecret = ClusterSecret.Read(args.String("cluster-secret-file")),
            EnableThrottler = args.Flag(ControlStdinOption),
        };
        if (settings.UsesDataChannel && settings.ClusterSecret is null)
        {
            Console.Error.WriteLine("distbp: warning: no cluster secret; give every node the same --cluster-secret-file "
                                    + "(or DISTBP_CLUSTER_SECRET) so that the data channel believes members only.");
        }
        var httpPort = args.String("http-port") is null ? (int?)null : TcpPort(args.Int("http-port", 0), "http-port");
        var httpHostname = args.String("http-hostname") ?? hostname;
        var parentPid = args.Int(ParentPidOption, 0);
        dashboard?.Follow(runDir);
        if (parentPid == 0)
        {
            return RunNode(settings, context, joinTimeout, httpPort, httpHostname, cancel).GetAwaiter().GetResult();
        }
        using var parentGone = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        _ = WatchParent(parentPid, parentGone);
        try
        {
            return RunNode(settings, context, joinTimeout, httpPort, httpHostname, parentGone.Token).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested && !IsRunning(parentPid))
        {
            Console.Error.WriteLine($"distbp: the launching process {parentPid} is gone; this node left the cluster.");
            return 1;
        }
        finally
        {
            parentGone.Cancel();
        }
    }

    /// <summary>Cancels <paramref name="gone"/> once process <paramref name="pid"/> no longer runs (polled every second).</summary>
    private static Task WatchParent(int pid, CancellationTokenSource gone)
    {
        var token = gone.Token;
        return Task.Run(async () =>
        {
            while (!token.IsCancellationRequested && IsRunning(pid))
            {
                await Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None);
            }
            if (!token.IsCancellationRequested)
            {
                gone.Cancel();
            }
        });
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    private static int TcpPort(int port, string option) => port is >= 0 and <= 65535
        ? port
        : throw new DistbpInputException($"--{option}: {port} is not a TCP port.");

    private static async Task<int> RunNode(ClusterNodeSettings settings, NodeContext context, TimeSpan joinTimeout,
        int? httpPort, string httpHostname, CancellationToken cancel)
    {
        int? managementPort = settings.Discovery == Discovery.Seeds ? null : settings.ManagementPort;
        using var metrics = new PrometheusExposition();
        ClusterNode started;
        try
        {
            started = await ClusterNode.StartAsync(settings, context, cancel,
                httpPort is not null || managementPort is not null
                    ? host => NodeHttpEndpoints.AddTo(host, httpHostname, httpPort, settings.Hostname, managementPort, metrics)
                    : null);
        }
        catch (Exception e) when (SocketErrorIn(e) is { } socket)
        {
            throw new DistbpInputException(
                $"--port: cannot listen on {settings.Hostname}:{settings.Port} ({socket.Message}); pick another port, or 0 for any free one.");
        }
        await using var node = started;
        if (context.ComputedSlicesHook is Chaos.FaultInjector faults)
        {
            Chaos.ChaosControl.Listen(faults, Console.In, duration => _ = node.PartitionAsync(duration));
        }
        Console.WriteLine($"node {node.Address} started (config {context.Spec.ConfigHash})");
        // SIGTERM and Ctrl-C cancel the token (Program.cs); leaving the cluster happens as the node is disposed.
        return await AwaitJob(node, settings, context, joinTimeout, cancel);
    }

    private static async Task<int> AwaitJob(ClusterNode node, ClusterNodeSettings settings, NodeContext context,
        TimeSpan joinTimeout, CancellationToken cancel)
    {
        var joined = await node.JoinAsync(joinTimeout, cancel);
        cancel.ThrowIfCancellationRequested();
        if (joined == ClusterNode.JoinOutcome.Removed)
        {
            // A fault, not bad input: started again (by Kubernetes, or simulate's launcher) it joins once the old one is gone.
            Console.Error.WriteLine($"distbp: this node was downed while it joined the cluster (an earlier incarnation at {node.Address} was still being removed); start it again.");
            return 1;
        }
        if (joined != ClusterNode.JoinOutcome.Up)
        {
            throw new DistbpInputException(
                settings.Discovery == Discovery.Seeds
                    ? $"--seeds: could not join the cluster through {string.Join(", ", settings.Seeds)} within {joinTimeout.TotalSeconds:F0} s; check that a seed is running and reachable."
                    : $"--discovery: cluster bootstrap ({settings.Discovery}) found no cluster within {joinTimeout.TotalSeconds:F0} s; check that {settings.RequiredContactPoints} contact points are up and their management port {settings.ManagementPort} is reachable.");
        }
        using var registration = cancel.Register(() => context.Abandon(cancel));
        var outcome = await node.Finished;
        // SIGTERM also stops the host (and so the actor system) directly; that is a requested stop, not a failure.
        cancel.ThrowIfCancellationRequested();
        await node.StopWorkerRegionAsync(TimeSpan.FromSeconds(2));
        if (outcome.Result is not { } result)
        {
            return JobOutcomes.Ended(outcome, Console.Error);
        }
        Console.WriteLine($"test accuracy {result.Test.Accuracy:P2}  test loss {result.Test.Loss:F4}  "
                          + $"{result.SamplesPerSecond:N0} samples/s over {result.TrainSeconds:F2} s");
        Console.WriteLine($"weights_sha256 {result.WeightsSha256}");
        await node.WaitForOthersToLeaveAsync(TimeSpan.FromSeconds(10));
        return 0;
    }

    /// <summary>The socket error somewhere inside the (deeply aggregated) exception Akka.Remote throws when it cannot bind.</summary>
    private static System.Net.Sockets.SocketException? SocketErrorIn(Exception? e) => e switch
    {
        null => null,
        System.Net.Sockets.SocketException socket => socket,
        AggregateException aggregate => aggregate.InnerExceptions.Select(SocketErrorIn).FirstOrDefault(s => s is not null),
        _ => SocketErrorIn(e.InnerException),
    };

    private static List<string> Split(string? list) =>
        (list ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    /// <summary>Prepends DISTBP_NAME environment values as --name flags; flags given on the command line win.</summary>
    public static IReadOnlyList<string> WithEnvironment(IReadOnlyList<string> argv, IEnumerable<string> valued,
        IEnumerable<string> switches)
    {
        var given = argv.Where(a => a.StartsWith("--", StringComparison.Ordinal))
            .Select(a => a[2..].Split('=')[0]).ToHashSet();
        var result = new List<string>();
        foreach (var name in valued)
        {
            var value = Environment.GetEnvironmentVariable(EnvironmentName(name));
            if (!string.IsNullOrEmpty(value) && !given.Contains(name))
            {
                result.Add($"--{name}={value}");
            }
        }
        foreach (var name in switches.Where(s => s != "help"))
        {
            var value = Environment.GetEnvironmentVariable(EnvironmentName(name));
            if (value is "1" or "true" or "True" && !given.Contains(name))
            {
                result.Add($"--{name}");
            }
        }
        result.AddRange(argv);
        return result;
    }

    public static string EnvironmentName(string option) => "DISTBP_" + option.Replace('-', '_').ToUpperInvariant();
}
