using System.Diagnostics;
using System.Reflection;
using System.Runtime.Intrinsics;
using DistributedBackprop.Core.Kernels;
using DistributedBackprop.KernelProbe;
using Xunit;

namespace DistributedBackprop.Core.Tests.Kernels;

/// <summary>
/// docs/ARCHITECTURE.md, step protocol 3: kernels give the same bits whatever the CPU's vector width. Re-runs the fixed probe cases in a
/// child process with AVX-512, then AVX2 too, switched off, and compares the SHA-256 of the outputs with this
/// process's. The child reports which path it took, so a knob that no longer works fails loudly instead of
/// comparing a path with itself.
/// </summary>
public class KernelDeterminismTests
{
    // .NET 8/9 read DOTNET_EnableAVX512F; .NET 10 replaced it with DOTNET_EnableAVX512 (EnableAVX512F is ignored).
    private static readonly (string, string)[] NoAvx512 = [("DOTNET_EnableAVX512F", "0"), ("DOTNET_EnableAVX512", "0")];
    private static readonly (string, string)[] NoAvx2 = [.. NoAvx512, ("DOTNET_EnableAVX2", "0")];

    private static readonly Lazy<string> InProcessHash = new(KernelProbeCases.Hash);

    [Fact]
    public void Probe_DefaultEnvironment_MatchesInProcess()
    {
        var (path, hash) = RunProbe([]);
        Assert.Equal(Gemm.HardwarePath, path);
        Assert.Equal(InProcessHash.Value, hash);
    }

    [Fact]
    public void Probe_WithoutAvx512_MatchesInProcess()
    {
        var (path, hash) = RunProbe(NoAvx512);
        Assert.NotEqual("Vector512", path);
        if (Vector256.IsHardwareAccelerated)
        {
            Assert.Equal("Vector256", path);
        }
        Assert.Equal(InProcessHash.Value, hash);
    }

    [Fact]
    public void Probe_WithoutAvx512AndAvx2_MatchesInProcess()
    {
        var (path, hash) = RunProbe(NoAvx2);
        Assert.Equal("Scalar", path);
        Assert.Equal(InProcessHash.Value, hash);
    }

    private static (string Path, string Hash) RunProbe((string Name, string Value)[] env)
    {
        var probe = typeof(KernelDeterminismTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(m => m.Key == "KernelProbePath").Value!;
        Assert.True(File.Exists(probe), $"Kernel probe not built at {probe} (it is a ProjectReference of this test project).");

        var psi = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(probe);
        // With knobs to set, start from a clean slate (no inherited ISA knobs); with none, inherit this
        // process's environment so the child takes the same path as this process.
        foreach (var key in env.Length == 0 ? [] : psi.Environment.Keys.ToList())
        {
            if (key.StartsWith("DOTNET_Enable", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("COMPlus_Enable", StringComparison.OrdinalIgnoreCase)
                || key.Equals("DOTNET_PreferredVectorBitWidth", StringComparison.OrdinalIgnoreCase))
            {
                psi.Environment.Remove(key);
            }
        }
        foreach (var (name, value) in env)
        {
            psi.Environment[name] = value;
        }

        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("Kernel probe did not exit within 2 minutes.");
        }
        Assert.True(process.ExitCode == 0, $"Kernel probe exited with {process.ExitCode}: {stderr.Result}");

        var values = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split('=', 2))
            .Where(kv => kv.Length == 2)
            .ToDictionary(kv => kv[0], kv => kv[1]);
        Assert.True(values.ContainsKey("path") && values.ContainsKey("sha256"), $"Unexpected probe output: {stdout}");
        return (values["path"], values["sha256"]);
    }

    /// <summary>The dotnet muxer: the one running the tests if known, else `dotnet` on PATH.</summary>
    private static string DotnetHost()
    {
        var hostPath = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(hostPath) && File.Exists(hostPath))
        {
            return hostPath;
        }
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            return self;
        }
        return "dotnet";
    }
}
