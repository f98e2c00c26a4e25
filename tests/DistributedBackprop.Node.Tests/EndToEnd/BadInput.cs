using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>
/// The contract for bad input: exit code 2, exactly one line on standard error that names the input, no stack trace,
/// and nothing written (neither the outputs nor temp files).
/// </summary>
public static class BadInput
{
    /// <summary>Runs <c>distbp train</c> with outputs in <c>out/</c> of <paramref name="temp"/>, and checks the contract.</summary>
    public static DistbpRun Train(TempFolder temp, string names, params string[] args)
    {
        var outFolder = temp.File("out");
        string[] all =
        [
            "train", .. args, "--out", Path.Combine(outFolder, "model.distbp"),
            "--summary-json", Path.Combine(outFolder, "summary.json"),
        ];
        var run = Distbp.RunIn(temp.Path, all);
        Check(run, names);
        Assert.False(Directory.Exists(outFolder) && Directory.EnumerateFileSystemEntries(outFolder).Any(),
            $"bad input left files in {outFolder}: {run}");
        Assert.False(Directory.Exists(temp.File("runs")), $"bad input made a run folder: {run}");
        NoTempFiles(temp);
        return run;
    }

    public static DistbpRun Eval(TempFolder temp, string names, params string[] args)
    {
        var run = Distbp.RunIn(temp.Path, ["eval", .. args]);
        Check(run, names);
        NoTempFiles(temp);
        return run;
    }

    public static void Check(DistbpRun run, string names)
    {
        Assert.True(run.ExitCode == 2, $"expected exit code 2 for bad input; {run}");
        var line = run.Stderr.TrimEnd('\r', '\n');
        Assert.False(string.IsNullOrWhiteSpace(line), $"no message on stderr; {run}");
        Assert.True(!line.Contains('\n') && !line.Contains('\r'), $"stderr is not one line; {run}");
        Assert.StartsWith("distbp: ", line);
        Assert.Contains(names, line);
        Assert.DoesNotContain("   at ", line);
        Assert.DoesNotContain("Exception", line);
        Assert.DoesNotContain("internal error", line);
    }

    private static void NoTempFiles(TempFolder temp)
    {
        var leftovers = Directory.EnumerateFiles(temp.Path, "*.tmp", SearchOption.AllDirectories).ToArray();
        Assert.True(leftovers.Length == 0, $"temp files left behind: {string.Join(", ", leftovers)}");
    }
}
