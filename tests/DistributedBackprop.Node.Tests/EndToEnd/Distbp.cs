using System.Diagnostics;
using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>What one run of the real <c>distbp</c> process left behind.</summary>
public sealed record DistbpRun(int ExitCode, string Stdout, string Stderr)
{
    public string[] StdoutLines => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();

    public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();

    /// <summary>The value after "weights_sha256 " on standard output.</summary>
    public string WeightsSha256 =>
        StdoutLines.Single(l => l.StartsWith("weights_sha256 ", StringComparison.Ordinal))["weights_sha256 ".Length..];

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

/// <summary>
/// Runs the built <c>distbp.dll</c> (copied next to this test assembly by the project reference) as a child process
/// with <c>dotnet distbp.dll ...</c>, output redirected, and waits for it with a deadline.
/// </summary>
public static class Distbp
{
    public static readonly TimeSpan Deadline = TimeSpan.FromMinutes(3);

    public static string DllPath { get; } = typeof(Program).Assembly.Location;

    public static DistbpRun Run(params string[] args) => RunIn(Path.GetTempPath(), args);

    public static DistbpRun RunIn(string workingDirectory, params string[] args) =>
        RunWithEnvironment(workingDirectory, new Dictionary<string, string>(), args);

    /// <summary>Runs distbp with these environment variables set (on top of the test's own environment).</summary>
    public static DistbpRun RunWithEnvironment(string workingDirectory, IReadOnlyDictionary<string, string> environment,
        params string[] args)
    {
        var start = new ProcessStartInfo(DotnetHost())
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
        start.ArgumentList.Add(DllPath);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(Deadline))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"distbp {string.Join(' ', args)} did not finish within {Deadline}; stdout so far:\n{stdout.Result}\nstderr:\n{stderr.Result}");
        }
        process.WaitForExit();
        return new DistbpRun(process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>The dotnet host running this test (testhost runs under it), else DOTNET_HOST_PATH, else PATH's.</summary>
    public static string DotnetHost()
    {
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }
        return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
    }
}
