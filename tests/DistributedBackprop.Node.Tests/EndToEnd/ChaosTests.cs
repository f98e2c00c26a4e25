using System.Text.Json;
using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>
/// The promise under real faults: <c>distbp simulate --chaos</c> SIGKILLs, SIGSTOPs, partitions and poisons real node
/// processes, and the run still ends with the fault-free weights, listing what was injected and what was detected.
/// </summary>
public sealed class ChaosTests
{
    private static readonly string[] Work =
        ["--layers", "784-32-10", "--epochs", "2", "--batch", "64", "--slices", "8", "--checkpoint-every", "20"];

    [Fact]
    public void Killed_stopped_partitioned_and_poisoned_nodes_leave_the_weights_unchanged()
    {
        using var temp = new TempFolder();
        var oracle = Distbp.RunIn(temp.Path, ["train", "--workers", "1", .. Work]);
        Assert.True(oracle.ExitCode == 0, oracle.ToString());

        var summaryPath = temp.File("summary.json");
        var chaos = Distbp.RunIn(temp.Path,
        [
            "simulate", "--nodes", "3", .. Work, "--summary-json", summaryPath,
            "--chaos", "kill:node-2@20,partition:node-1@60/3s,nan:node-0@90,stop:node-1@130/2s",
        ]);
        Assert.True(chaos.ExitCode == 0, chaos.ToString());
        Assert.Equal(oracle.WeightsSha256, chaos.WeightsSha256);

        using var summary = JsonDocument.Parse(File.ReadAllText(summaryPath));
        var faults = summary.RootElement.GetProperty("faults");
        Assert.Equal(4, faults.GetProperty("injected").GetArrayLength());
        var detected = faults.GetProperty("detected").EnumerateArray().Select(f => f.GetProperty("kind").GetString()).ToList();
        Assert.Contains("non-finite-result", detected);
        Assert.Contains(detected, kind => kind is "node-unreachable" or "node-removed" or "straggler");

        // The run folder's events list the same faults, each with the time to the next completed step.
        var events = RunFolderTests.Lines(Path.Combine(RunFolderTests.PrintedRunFolder(chaos), "events.jsonl"));
        var faultEvents = events.Where(e => (string?)e["kind"] == "fault").ToList();
        Assert.Contains(faultEvents, f => (string?)f["type"] == "nan-gradient" && f["recovery_s"] is not null);
        Assert.Contains(faultEvents, f => (string?)f["type"] is "worker-lost" or "straggler");
    }
}
