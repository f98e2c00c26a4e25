using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace DistributedBackprop.Node.Simulation;

/// <summary>What to start: N nodes, the training arguments each gets, and the folder for their logs and outputs.</summary>
public sealed record ClusterLaunch(int Nodes, IReadOnlyList<string> TrainingArguments, string LogDir);

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
    public static readonly TimeSpan LeaveGrace = TimeSpan.FromSeconds(30);

    private readonly List<NodeProcess> _nodes = [];

    public int Run(string? outPath, string? summaryPath, CancellationToken cancel) =>
        RunAsync(outPath, summaryPath, cancel).GetAwaiter().GetResult();

    private async Task<int> RunAsync(string? outPath, string? summaryPath, CancellationToken cancel)
    {
        var summaryTemp = Path.Combine(launch.LogDir, "summary.json");
        var modelTemp = outPath is null ? null : Path.Combine(launch.LogDir, "model.distbp");
        File.Delete(summaryTemp);
        if (modelTemp is not null)
        {
            File.Delete(modelTemp);
        }
        List<string> outputs = ["--summary-json", summaryTemp];
        if (modelTemp is not null)
        {
            outputs.AddRange(["--out", modelTemp]);
        }
        int exitCode;
        try
        {
            exitCode = await StartAndWait(outputs, cancel);
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
        if (!File.Exists(summaryTemp) || JsonNode.Parse(await File.ReadAllTextAsync(summaryTemp, CancellationToken.None)) is not JsonObject summary)
        {
            errors.WriteLine($"distbp: every node exited 0 but no summary was written to {summaryTemp}; see the node logs in {launch.LogDir}.");
            return 1;
        }
        if (summaryPath is not null)
        {
            CopyAtomically(summaryTemp, summaryPath);
        }
        if (outPath is not null && modelTemp is not null)
        {
            CopyAtomically(modelTemp, outPath);
        }
        output.WriteLine($"weights_sha256 {summary["weights_sha256"]?.GetValue<string>()}");
        return 0;
    }

    private async Task<int> StartAndWait(IReadOnlyList<string> outputs, CancellationToken cancel)
    {
        var (host, hostArguments) = SelfCommand();
        List<string> Arguments(int port, string seed) =>
        [
            "node", "--port", Text(port), "--seeds", seed, "--min-nodes", Text(launch.Nodes),
            "--parent-pid", Text(Environment.ProcessId), .. outputs, .. launch.TrainingArguments,
        ];

        // The seed first, on a port that was free a moment ago; another process may take it in between, then again.
        string seed;
        for (var attempt = 1; ; attempt++)
        {
            var port = FreeLoopbackPort();
            seed = $"akka.tcp://distbp@127.0.0.1:{port}";
            var node = NodeProcess.Start(0, host, hostArguments, Arguments(port, seed), launch.LogDir, output, errors);
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
        for (var k = 1; k < launch.Nodes; k++)
        {
            _nodes.Add(NodeProcess.Start(k, host, hostArguments, Arguments(0, seed), launch.LogDir, output, errors));
        }
        return await WaitForAll(cancel);
    }

    private static string Text(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>0 when every node exits 0; else the first non-zero exit code (the others are stopped at once).</summary>
    private async Task<int> WaitForAll(CancellationToken cancel)
    {
        var running = _nodes.ToList();
        var interrupted = Task.Delay(Timeout.Infinite, cancel);
        Task? leaveDeadline = null;
        while (running.Count > 0)
        {
            var waits = running.Select(n => n.Exited).Append(interrupted);
            if (leaveDeadline is not null)
            {
                waits = waits.Append(leaveDeadline);
            }
            var done = await Task.WhenAny(waits);
            cancel.ThrowIfCancellationRequested();
            if (done == leaveDeadline)
            {
                var stuck = running[0];
                errors.WriteLine($"distbp: {stuck.Name} did not exit within {LeaveGrace.TotalSeconds:F0} s of the job's end; see {stuck.LogPath}.");
                return 1;
            }
            var node = running.First(n => n.Exited == done);
            running.Remove(node);
            if (node.ExitCode != 0)
            {
                return Failed(node);
            }
            leaveDeadline ??= Task.Delay(LeaveGrace, CancellationToken.None);
        }
        return 0;
    }

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

    private static void CopyAtomically(string source, string destination)
    {
        var full = Path.GetFullPath(destination);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = $"{full}.{Environment.ProcessId}.tmp";
        try
        {
            File.Copy(source, temp, overwrite: true);
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }
}
