using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace DistributedBackprop.Node.Simulation;

/// <summary>
/// What to start: N nodes, the training arguments each gets (they name <paramref name="RunDir"/>), the folder for
/// their logs, and the run folder where the coordinator, on whichever node, writes the model and summary.
/// </summary>
public sealed record ClusterLaunch(int Nodes, IReadOnlyList<string> TrainingArguments, string LogDir, string RunDir)
{
    /// <summary>Faults to inject (simulate --chaos); none by default.</summary>
    public IReadOnlyList<Chaos.ChaosEvent> Chaos { get; init; } = [];
    /// <summary>A node killed by chaos, or one that exits on its own mid-job, is started again after this delay.</summary>
    public TimeSpan RespawnDelay { get; init; } = TimeSpan.FromSeconds(2);
    public bool Respawn { get; init; } = true;
}

/// <summary>
/// Starts N <c>distbp node</c> processes on loopback (node-0 is the seed, on a free port; the others join it), waits
/// for all of them, and stops every one of them on the first failure or on interruption: SIGTERM first (the node
/// leaves the cluster), a kill of the whole tree after a grace period. Each node also watches the launcher's pid, so
/// none outlives it even when the launcher is killed outright.
/// </summary>
public sealed class ClusterLauncher(ClusterLaunch launch, TextWriter output, TextWriter errors)
{
    public static readonly TimeSpan StartDeadline = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);
    /// <summary>How long the other nodes may take to exit once one node has finished the job.</summary>
    public static readonly TimeSpan LeaveGrace = TimeSpan.FromSeconds(15);

    private readonly List<NodeProcess> _nodes = [];
    private ChaosDriver? _chaos;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string _seed = "";
    // Under chaos the nodes run Akka's throttler adapter (partitions), which shows in their addresses.
    private string Scheme => launch.Chaos.Count > 0 ? "akka.trttl.tcp" : "akka.tcp";
    private (string Host, IReadOnlyList<string> Arguments) _self;
    // One secret per run, shared by its nodes only (each data-channel connection proves it).
    private readonly string _secret = Commands.ClusterSecret.New();

    public int Run(string? outPath, string? summaryPath, CancellationToken cancel) =>
        RunAsync(outPath, summaryPath, cancel).GetAwaiter().GetResult();

    private async Task<int> RunAsync(string? outPath, string? summaryPath, CancellationToken cancel)
    {
        var run = new Core.Runs.RunFiles(launch.RunDir);
        int exitCode;
        try
        {
            exitCode = await StartAndWait(cancel);
        }
        finally
        {
            await StopAll();
            foreach (var node in _nodes)
            {
                node.Dispose();
            }
        }
        cancel.ThrowIfCancellationRequested();
        if (exitCode != 0)
        {
            return exitCode;
        }
        if (!File.Exists(run.Summary) || JsonNode.Parse(await File.ReadAllTextAsync(run.Summary, CancellationToken.None)) is not JsonObject summary)
        {
            errors.WriteLine($"distbp: every node exited 0 but no summary was written to {run.Summary}; see the node logs in {launch.LogDir}.");
            return 1;
        }
        if (_chaos is not null)
        {
            // The nodes know what they detected; only the launcher knows what it injected.
            var faults = summary["faults"] as JsonObject ?? [];
            faults["injected"] = _chaos.ToJson();
            summary["faults"] = faults;
            Core.AtomicWrite.Text(run.Summary, Core.Training.TrainingSummary.ToJson(summary));
            foreach (var line in _chaos.Report())
            {
                output.WriteLine(line);
            }
        }
        if (summaryPath is not null)
        {
            Core.AtomicWrite.Copy(run.Summary, summaryPath);
        }
        if (outPath is not null)
        {
            Core.AtomicWrite.Copy(run.Model, outPath);
        }
        output.WriteLine($"weights_sha256 {summary["weights_sha256"]?.GetValue<string>()}");
        return 0;
    }

    private List<string> Arguments(int port, string seeds) =>
    [
        "node", "--port", Text(port), "--seeds", seeds, "--min-nodes", Text(launch.Nodes),
        "--parent-pid", Text(Environment.ProcessId), .. launch.TrainingArguments,
        .. launch.Chaos.Count > 0 ? (string[])["--report-steps", "--control-stdin"] : [],
    ];

    private NodeProcess StartNode(int index, int port, string seeds, int incarnation = 0)
    {
        var node = NodeProcess.Start(index, _self.Host, _self.Arguments, Arguments(port, seeds), launch.LogDir, output,
            errors, control: launch.Chaos.Count > 0, incarnation,
            new Dictionary<string, string> { [Commands.ClusterSecret.EnvironmentVariable] = _secret });
        _chaos?.Attach(node);
        return node;
    }

    private async Task<int> StartAndWait(CancellationToken cancel)
    {
        _self = SelfCommand();
        if (launch.Chaos.Count > 0)
        {
            _chaos = new ChaosDriver(launch.Chaos, Current, Join, output, Owner);
        }

        // The seed first, on a port that was free a moment ago; another process may take it in between, then again.
        string seed;
        for (var attempt = 1; ; attempt++)
        {
            var port = FreeLoopbackPort();
            seed = $"{Scheme}://distbp@127.0.0.1:{Text(port)}";
            var node = StartNode(0, port, seed);
            _nodes.Add(node);
            // The joiners find the seed listening at once (an early refused connection gates the address for 5 s).
            var first = await Task.WhenAny(node.Started, node.Exited, Task.Delay(StartDeadline, cancel));
            cancel.ThrowIfCancellationRequested();
            if (first == node.Started)
            {
                break;
            }
            if (first != node.Exited)
            {
                errors.WriteLine($"distbp: {node.Name} did not start within {StartDeadline.TotalSeconds:F0} s; see {node.LogPath}.");
                return 1;
            }
            if (attempt == 3 || node.ExitCode != 2 || node.LastError?.StartsWith("--port:", StringComparison.Ordinal) != true)
            {
                return Failed(node);
            }
            _nodes.Remove(node);
            node.Dispose();
        }
        _seed = seed;
        for (var k = 1; k < launch.Nodes; k++)
        {
            _nodes.Add(StartNode(k, 0, seed));
        }
        return await WaitForAll(cancel);
    }

    private static string Text(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The newest process of node-K, if it runs.</summary>
    /// <summary>
    /// The node that owns range <paramref name="range"/> with sharded aggregation: the coordinator cuts the ranges over
    /// the nodes in the ordinal order of their addresses, so the running nodes in that order (null without so many).
    /// </summary>
    private NodeProcess? Owner(int range)
    {
        lock (_nodes)
        {
            var running = _nodes.Where(n => !n.HasExited && n.Address is not null)
                .OrderBy(n => n.Address, StringComparer.Ordinal).ToList();
            return range < running.Count ? running[range] : null;
        }
    }

    private NodeProcess? Current(int index)
    {
        lock (_nodes)
        {
            return _nodes.LastOrDefault(n => n.Index == index && !n.HasExited);
        }
    }

    /// <summary>
    /// 0 once the job is done (a node exits 0) and the others have left; else the first failing node's exit code.
    /// Under chaos, a node that was killed, or that exits on its own mid-job (downed by the Split Brain Resolver), is
    /// started again after the respawn delay, as Kubernetes restarts a pod; it rejoins through the live nodes.
    /// </summary>
    private async Task<int> WaitForAll(CancellationToken cancel)
    {
        var interrupted = Task.Delay(Timeout.Infinite, cancel);
        Task? leaveDeadline = null;
        while (true)
        {
            List<NodeProcess> running;
            lock (_nodes)
            {
                running = _nodes.Where(n => !n.Retired).ToList();
            }
            if (running.Count == 0)
            {
                return _jobDone ? 0 : 1;
            }
            var waits = running.Select(n => n.Exited).Append(interrupted).Append(_changed.Task);
            if (leaveDeadline is not null)
            {
                waits = waits.Append(leaveDeadline);
            }
            var done = await Task.WhenAny(waits);
            cancel.ThrowIfCancellationRequested();
            if (done == _changed.Task)
            {
                _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                continue;
            }
            if (done == leaveDeadline)
            {
                // The job is done and its outputs written; a node that has not left (say, one restarted after the end)
                // is stopped like the others.
                foreach (var stuck in running)
                {
                    errors.WriteLine($"warning: {stuck.Name} did not leave within {LeaveGrace.TotalSeconds:F0} s of the job's end; stopping it (log: {stuck.LogPath}).");
                }
                return 0;
            }
            var node = running.First(n => n.Exited == done);
            node.Retired = true;
            if (node.ExitCode == 0)
            {
                _jobDone = true;
                leaveDeadline ??= Task.Delay(LeaveGrace, CancellationToken.None);
                // A node started again during the job may still be joining a cluster that is now going away; it would
                // wait for the leave grace (15 s of every run with a kill). It has nothing left to do: it is asked to go.
                lock (_nodes)
                {
                    foreach (var restarted in running.Where(n => _startedMidJob.Contains(n) && !n.HasExited))
                    {
                        restarted.Terminate();
                    }
                }
                continue;
            }
            if (_jobDone || node.LeftByChaos)
            {
                continue;
            }
            // A restarted node runs with arguments that worked before: when it exits 2, what it met was the faults (its
            // old port taken meanwhile, no seed up yet), not bad input, and it is started again (on a new port when its
            // old one was taken). A fault is never exit 2.
            bool restartFailed;
            lock (_nodes)
            {
                restartFailed = node.ExitCode == 2 && _startedMidJob.Contains(node);
            }
            var portTaken = restartFailed && node.LastError?.StartsWith("--port:", StringComparison.Ordinal) == true;
            // A node told by the coordinator that the job failed (it printed the resume command) is not started again:
            // the job is over, and the launcher ends with that node's line.
            var jobFailed = node.LastError?.Contains("resume with:", StringComparison.Ordinal) == true;
            var chaosVictim = node.KilledByChaos || (_chaos is not null && node.ExitCode != 2) || restartFailed;
            if (!chaosVictim || jobFailed)
            {
                return Failed(node);
            }
            _restarts[node.Index] = _restarts.GetValueOrDefault(node.Index) + 1;
            if (_restarts[node.Index] > MaxRestarts)
            {
                errors.WriteLine($"distbp: {node.Name} was started again {MaxRestarts} times and exited each time (log: {node.LogPath}); "
                                 + $"giving up. resume with: distbp simulate --resume {launch.RunDir}");
                return 1;
            }
            output.WriteLine($"chaos: {node.Name} exited with code {node.ExitCode}"
                             + (launch.Respawn ? $"; starting it again in {launch.RespawnDelay.TotalSeconds:F1} s" : ""));
            if (launch.Respawn)
            {
                _ = RespawnLater(node, portTaken ? 0 : PortOf(node), cancel);
            }
        }
    }

    /// <summary>How often one node is started again before the launcher gives up on the job (exit 1).</summary>
    public const int MaxRestarts = 10;

    private int _incarnations;
    private readonly Dictionary<int, int> _restarts = [];
    private volatile bool _jobDone;
    // Nodes the launcher started while the job ran: restarted ones, and chaos joins.
    private readonly HashSet<NodeProcess> _startedMidJob = [];

    /// <summary>
    /// Starts node-K again after the respawn delay, as a StatefulSet restarts a pod: at the address it had (so the
    /// cluster replaces the old incarnation at once instead of keeping it as an unreachable member until the Split Brain
    /// Resolver downs it, where it counts against the live nodes), with the founder's address as its first seed and then
    /// whichever nodes still run. The founder is node-0, or the lowest node left when node-0 has left the job for good
    /// (chaos leave): restarted, it is its own first seed, so it joins the cluster if any node answers and founds a new one
    /// otherwise (every node was lost), which the others then join; the new coordinator resumes from the newest
    /// checkpoint. Not once the job is done (a node downed as the job ended has no cluster left to rejoin).
    /// </summary>
    private async Task RespawnLater(NodeProcess dead, int port, CancellationToken cancel)
    {
        await Task.Delay(launch.RespawnDelay, cancel);
        lock (_nodes)
        {
            if (_jobDone)
            {
                return;
            }
            var founder = _nodes.GroupBy(n => n.Index).Where(g => !g.Last().LeftByChaos).Select(g => g.Key)
                .DefaultIfEmpty(dead.Index).Min();
            var first = founder == dead.Index
                ? port > 0 ? $"{Scheme}://distbp@127.0.0.1:{Text(port)}" : null
                : _nodes.LastOrDefault(n => n.Index == founder && n.Address is not null)?.Address;
            var live = _nodes.Where(n => !n.HasExited && n.Address is not null && n.Address != first).Select(n => n.Address!);
            var seeds = string.Join(',', (first is not null ? [first] : Array.Empty<string>()).Concat(live));
            var node = StartNode(dead.Index, port, seeds, ++_incarnations);
            _startedMidJob.Add(node);
            _nodes.Add(node);
        }
        _changed.TrySetResult();
    }

    /// <summary>
    /// chaos join: a new node (the next index) joins through the live nodes, node-0's address first, as a scaled-up
    /// Deployment's new pod does; the coordinator gives it workers at the next step boundary.
    /// </summary>
    private NodeProcess Join()
    {
        NodeProcess node;
        lock (_nodes)
        {
            var live = _nodes.Where(n => !n.HasExited && n.Address is not null).Select(n => n.Address!)
                .OrderBy(a => a == _seed ? 0 : 1).ToList();
            node = StartNode(_nodes.Max(n => n.Index) + 1, 0, string.Join(',', live.Count > 0 ? live : [_seed]));
            _nodes.Add(node);
            _startedMidJob.Add(node);
        }
        _changed.TrySetResult();
        return node;
    }

    /// <summary>The port a node listened on (from its address), or 0 when it never said.</summary>
    private static int PortOf(NodeProcess node) =>
        node.Address is { } address && int.TryParse(address.AsSpan(address.LastIndexOf(':') + 1), out var port) ? port : 0;

    private int Failed(NodeProcess node)
    {
        var reason = node.LastError is { } error ? $": {error}" : "";
        errors.WriteLine($"distbp: {node.Name} exited with code {node.ExitCode}{reason} (log: {node.LogPath}).");
        return node.ExitCode;
    }

    /// <summary>
    /// SIGTERM to every node still running, the joiners first and the seed (the oldest member, which hosts the
    /// singletons) last, as a finished job leaves; then a kill of each tree that outlives its grace period.
    /// </summary>
    private async Task StopAll()
    {
        await Stop(_nodes.Skip(1).ToList());
        await Stop(_nodes.Take(1).ToList());
    }

    private async Task Stop(List<NodeProcess> nodes)
    {
        var running = nodes.Where(n => !n.HasExited).ToList();
        if (running.Count == 0)
        {
            return;
        }
        foreach (var node in running)
        {
            node.Terminate();
        }
        var all = Task.WhenAll(running.Select(n => n.Exited));
        if (await Task.WhenAny(all, Task.Delay(StopGrace)) == all)
        {
            return;
        }
        foreach (var node in running.Where(n => !n.HasExited))
        {
            errors.WriteLine($"distbp: {node.Name} did not stop within {StopGrace.TotalSeconds:F0} s of SIGTERM; killing it.");
            node.Kill();
        }
        await Task.WhenAny(all, Task.Delay(StopGrace));
    }

    /// <summary>How to start this same distbp again: the host that runs it (dotnet distbp.dll, or the apphost).</summary>
    private static (string Host, IReadOnlyList<string> Arguments) SelfCommand()
    {
        var dll = typeof(Program).Assembly.Location;
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == Path.GetFileNameWithoutExtension(dll))
        {
            return (self, []);
        }
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return (self, [dll]);
        }
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } path ? path : "dotnet";
        return (host, [dll]);
    }

    /// <summary>A port that was free a moment ago (the seed binds it right after).</summary>
    private static int FreeLoopbackPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }
}
