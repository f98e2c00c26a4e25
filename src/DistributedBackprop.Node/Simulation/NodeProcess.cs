using System.Diagnostics;
using System.Runtime.InteropServices;

namespace DistributedBackprop.Node.Simulation;

/// <summary>
/// One <c>distbp node</c> child: its output goes line by line to <c>node-K.log</c>, and the lines the user should see
/// (progress, warnings, the result, errors) are relayed to the launcher's own output.
/// </summary>
public sealed partial class NodeProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly TextWriter _output;
    private readonly TextWriter _errors;
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _disposed;
    private StreamWriter? _control;

    private NodeProcess(int index, Process process, string logPath, TextWriter output, TextWriter errors)
    {
        Index = index;
        LogPath = logPath;
        _process = process;
        _output = output;
        _errors = errors;
        _log = new StreamWriter(logPath, append: false) { AutoFlush = true };
    }

    public int Index { get; }
    public string Name => $"node-{Index}";
    public string LogPath { get; }
    public int Pid => _process.Id;

    /// <summary>Completes once the node has bound its port and printed "node ... started".</summary>
    public Task Started => _started.Task;

    /// <summary>Completes once the process has exited and all of its output has been read.</summary>
    public Task Exited { get; private set; } = Task.CompletedTask;

    /// <summary>The node's last "distbp: ..." line on standard error (its error message), if any.</summary>
    public string? LastError { get; private set; }

    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    /// <summary>The node's cluster address, from its "node ADDRESS started" line.</summary>
    public string? Address { get; private set; }

    /// <summary>Raised for each "step N" line (only the coordinator's node prints them, with --report-steps).</summary>
    public event Action<NodeProcess, long>? StepReported;

    /// <summary>Set when the launcher killed or froze it on purpose (chaos), so its exit is no failure.</summary>
    public bool KilledByChaos { get; set; }

    /// <summary>Set when the launcher asked it to leave the cluster (chaos leave): it is not started again.</summary>
    public bool LeftByChaos { get; set; }

    /// <summary>Set once the launcher has dealt with its exit.</summary>
    public bool Retired { get; set; }

    public static NodeProcess Start(int index, string host, IReadOnlyList<string> hostArguments,
        IReadOnlyList<string> arguments, string logDir, TextWriter output, TextWriter errors, bool control = false,
        int incarnation = 0, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(host)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in hostArguments.Concat(arguments))
        {
            start.ArgumentList.Add(argument);
        }
        // The nodes get their options from the command line only, never from the launcher's DISTBP_* environment.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("DISTBP_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name);
        }
        // ...except what the launcher sets for them on purpose (the run's cluster secret: off the command line).
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        var process = new Process { StartInfo = start };
        var logName = incarnation == 0 ? $"node-{index}.log" : $"node-{index}.{incarnation}.log";
        var node = new NodeProcess(index, process, Path.Combine(logDir, logName), output, errors);
        process.OutputDataReceived += (_, e) => node.OnLine(e.Data, error: false);
        process.ErrorDataReceived += (_, e) => node.OnLine(e.Data, error: true);
        node._log.WriteLine($"$ {host} {string.Join(' ', start.ArgumentList)}");
        process.Start();
        lock (node._log)
        {
            node._log.WriteLine($"# pid {process.Id}");
        }
        if (control)
        {
            node._control = process.StandardInput;
            node._control.AutoFlush = true;
        }
        else
        {
            process.StandardInput.Close();
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        node.Exited = process.WaitForExitAsync();
        return node;
    }

    private void OnLine(string? line, bool error)
    {
        if (line is null)
        {
            return;
        }
        lock (_log)
        {
            if (_disposed)
            {
                return;
            }
            _log.WriteLine(line);
        }
        if (!error && line.StartsWith("node ", StringComparison.Ordinal) && line.Contains(" started", StringComparison.Ordinal))
        {
            Address = line.Split(' ')[1];
            _started.TrySetResult();
        }
        if (!error && line.StartsWith("step ", StringComparison.Ordinal)
            && long.TryParse(line.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var step))
        {
            StepReported?.Invoke(this, step);
            return;
        }
        if (error && line.StartsWith("warning: ", StringComparison.Ordinal))
        {
            _errors.WriteLine(line);
        }
        else if (error && line.StartsWith("distbp: ", StringComparison.Ordinal))
        {
            // Not relayed: the launcher reports the first failing node's error once, with its name.
            LastError = line["distbp: ".Length..];
        }
        else if (!error && (line.StartsWith("epoch ", StringComparison.Ordinal)
                            || line.StartsWith("test accuracy ", StringComparison.Ordinal)))
        {
            // weights_sha256 is printed by the launcher from the summary, once.
            _output.WriteLine(line);
        }
    }

    /// <summary>Asks the node to leave the cluster and exit (SIGTERM; on Windows there is none, so it is killed).</summary>
    public void Terminate()
    {
        if (HasExited)
        {
            return;
        }
        if (OperatingSystem.IsWindows())
        {
            Kill();
            return;
        }
        _ = SendSignal(Pid, SIGTERM);
    }

    /// <summary>Sends a fault command to the node's standard input (nodes started with control).</summary>
    public void SendCommand(string command)
    {
        try
        {
            _control?.WriteLine(command);
        }
        catch (IOException)
        {
            // The node is gone; nothing to inject.
        }
    }

    /// <summary>SIGKILL, SIGSTOP or SIGCONT: what chaos does to a process.</summary>
    public void Signal(int signal)
    {
        if (!HasExited && !OperatingSystem.IsWindows())
        {
            _ = SendSignal(Pid, signal);
        }
    }

    public const int SIGKILL = 9;
    public const int SIGCONT = 18;
    public const int SIGSTOP = 19;

    /// <summary>Kills the node and anything it started.</summary>
    public void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    public void Dispose()
    {
        _process.Dispose();
        lock (_log)
        {
            _disposed = true;
            _log.Dispose();
        }
    }

    private const int SIGTERM = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);
}
