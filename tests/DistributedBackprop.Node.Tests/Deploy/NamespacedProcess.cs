using System.Diagnostics;
using System.Text;

namespace DistributedBackprop.Node.Tests.Deploy;

/// <summary>A process started inside a network namespace (<c>ip netns exec</c>), its output collected as it comes.</summary>
internal sealed record NamespacedProcess(string Name, Process Process, StringBuilder Output)
{
    public static NamespacedProcess Start(string ns, string file, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])["netns", "exec", ns, file, .. args])
        {
            start.ArgumentList.Add(a);
        }
        var output = new StringBuilder();
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new NamespacedProcess(ns, process, output);
    }

    /// <summary>Every process's state and output so far, for a failure message.</summary>
    public static string Dump(IEnumerable<NamespacedProcess> processes) =>
        string.Join("\n", processes.Select(p =>
        {
            lock (p.Output)
            {
                return $"--- {p.Name} {(p.Process.HasExited ? $"exit {p.Process.ExitCode}" : "running")}\n{p.Output}";
            }
        }));
}
