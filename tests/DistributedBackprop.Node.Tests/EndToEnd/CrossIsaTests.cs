using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>
/// A cluster may mix machines with different vector units. The whole training pipeline — kernels, elementwise ops,
/// reductions, optimizer — must give the same bits on the AVX-512, AVX2 and scalar paths, so the same run is repeated
/// in child processes with those instruction sets switched off (.NET 10 reads DOTNET_EnableAVX512; older runtimes
/// DOTNET_EnableAVX512F, so both are set).
/// </summary>
public sealed partial class CrossIsaTests
{
    private static readonly string[] Args =
        ["train", "--layers", "784-16-10", "--epochs", "1", "--batch", "200", "--slices", "4", "--dropout", "0.1",
         "--batch-norm", "--optimizer", "adam", "--lr", "0.01"];

    [Fact]
    public void Training_gives_the_same_weights_without_avx512_and_without_avx2()
    {
        using var temp = new TempFolder();
        var native = Sha(temp.Path, []);
        var withoutAvx512 = Sha(temp.Path, [("DOTNET_EnableAVX512", "0"), ("DOTNET_EnableAVX512F", "0")]);
        var scalar = Sha(temp.Path,
            [("DOTNET_EnableAVX512", "0"), ("DOTNET_EnableAVX512F", "0"), ("DOTNET_EnableAVX2", "0")]);
        Assert.Equal(native, withoutAvx512);
        Assert.Equal(native, scalar);
    }

    private static string Sha(string folder, (string Name, string Value)[] environment)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = folder,
        };
        start.ArgumentList.Add(Distbp.DllPath);
        foreach (var arg in Args)
        {
            start.ArgumentList.Add(arg);
        }
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(Distbp.Deadline), "distbp did not finish in time");
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}: {stderr.Result}");
        var match = ShaLine().Match(stdout.Result);
        Assert.True(match.Success, stdout.Result);
        return match.Groups[1].Value;
    }

    [GeneratedRegex("weights_sha256 ([0-9a-f]{64})")]
    private static partial Regex ShaLine();
}
