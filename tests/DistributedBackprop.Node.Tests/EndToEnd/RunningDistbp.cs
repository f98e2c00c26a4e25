using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>
/// A <c>distbp</c> process the test keeps talking to while it runs: its output is collected as it comes, it can be
/// signalled, and it is killed (with its children) when the test is done with it, whatever happened.
/// </summary>
public sealed partial class RunningDistbp : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly string _command;

    private RunningDistbp(Process process, string command)
    {
        _process = process;
        _command = command;
    }

    public int Pid => _process.Id;

    public string Stdout
    {
        get
        {
            lock (_stdout)
            {
                return _stdout.ToString();
            }
        }
    }

    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    public static RunningDistbp Start(string workingDirectory, params string[] args) =>
        StartWithEnvironment(workingDirectory, new Dictionary<string, string>(), args);

    /// <summary>Starts distbp with these environment variables set (on top of the test's own environment).</summary>
    public static RunningDistbp StartWithEnvironment(string workingDirectory,
        IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo(Distbp.DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        start.ArgumentList.Add(Distbp.DllPath);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        var process = new Process { StartInfo = start };
        var running = new RunningDistbp(process, string.Join(' ', args));
        process.OutputDataReceived += (_, e) => Append(running._stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Append(running._stderr, e.Data);
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return running;
    }

    private static void Append(StringBuilder buffer, string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (buffer)
        {
            buffer.Append(line).Append('\n');
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds, polling; fails the test at the deadline or if the process ends first.</summary>
    public void WaitUntil(Func<bool> condition, TimeSpan deadline, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.False(_process.HasExited && !condition(), $"distbp {_command} exited before {what}; {Result()}");
            Assert.True(clock.Elapsed < deadline, $"distbp {_command}: no {what} within {deadline}; {Result()}");
            Thread.Sleep(50);
        }
    }

    public bool HasExited => _process.HasExited;

    /// <summary>Waits up to <paramref name="timeout"/> for the exit; true if it exited.</summary>
    public bool WaitForExitOrTimeout(TimeSpan timeout) => _process.WaitForExit(timeout);

    /// <summary>Waits for the exit (and the end of its output) and returns what the process left behind.</summary>
    public DistbpRun WaitForExit(TimeSpan deadline)
    {
        Assert.True(_process.WaitForExit(deadline), $"distbp {_command} did not exit within {deadline}; {Result()}");
        _process.WaitForExit();
        return Result();
    }

    /// <summary>The pids of this process's direct children (the nodes of a <c>simulate</c>), from /proc.</summary>
    public IReadOnlyList<int> ChildPids()
    {
        var pids = new List<int>();
        foreach (var task in Directory.EnumerateDirectories($"/proc/{Pid}/task"))
        {
            try
            {
                pids.AddRange(File.ReadAllText(Path.Combine(task, "children"))
                    .Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse));
            }
            catch (IOException)
            {
                // the thread ended between the listing and the read
            }
        }
        return pids;
    }

    /// <summary>A process's resident memory in bytes (VmRSS), or null once it has gone.</summary>
    public static long? ResidentBytes(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return line is null ? null : 1024 * long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        }
        catch (IOException)
        {
            return null;
        }
    }

    public void Signal(int signal) => Assert.Equal(0, SendSignal(Pid, signal));

    public const int SIGINT = 2;
    public const int SIGTERM = 15;

    public static bool IsAlive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>A loopback port nobody listens on (bound for a moment to pick it, then closed).</summary>
    public static int ClosedPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private DistbpRun Result() =>
        new(_process.HasExited ? _process.ExitCode : -1, Stdout, Stderr);

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        _process.Dispose();
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);
}
