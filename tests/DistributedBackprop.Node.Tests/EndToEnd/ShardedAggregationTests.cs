using System.Text.Json;
using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>
/// <c>--aggregation sharded</c> with real node processes: the weights of one process, no node moving more than a ring
/// all-reduce would (with a little slack), and a range owner's loss recovered from the newest checkpoint.
/// </summary>
public sealed class ShardedAggregationTests
{
    /// <summary>The benchmark-sized model (P = 235,146): ranges of ~8,192-value blocks balance well over four nodes.</summary>
    private static readonly string[] Work = ["--epochs", "2", "--batch", "256", "--slices", "8", "--checkpoint-every", "1000"];

    /// <summary>
    /// Four nodes, one worker each, each worker's slices one aligned subtree: each node sends (N−1)/N of the model's
    /// gradient bytes to the other owners and its range to N−1 caches, and receives as much — 4(N−1)/N · M in all, a ring
    /// all-reduce's send plus receive. The coordinator's node is no busier than the others. The bound allows 15 % for
    /// uneven ranges and the state handed out at the start and gathered at the end.
    /// </summary>
    [Fact]
    public void Four_sharded_nodes_give_the_weights_of_one_process_and_no_node_moves_more_than_a_ring_all_reduce()
    {
        using var temp = new TempFolder();
        var oracle = Distbp.RunIn(temp.Path, ["train", "--workers", "1", .. Work]);
        Assert.True(oracle.ExitCode == 0, oracle.ToString());
        var summaryPath = temp.File("summary.json");
        var sharded = Distbp.RunIn(temp.Path, ["simulate", "--nodes", "4", "--aggregation", "sharded", .. Work, "--summary-json", summaryPath]);
        Assert.True(sharded.ExitCode == 0, sharded.ToString());
        Assert.Equal(oracle.WeightsSha256, sharded.WeightsSha256);

        using var summary = JsonDocument.Parse(File.ReadAllText(summaryPath));
        const double m = 4.0 * 235_146; // the model's bytes
        const int n = 4;
        var busiest = summary.RootElement.GetProperty("busiest_node_bytes_per_step").GetDouble();
        Assert.InRange(busiest, 4.0 * (n - 1) / n * m * 0.95, 1.15 * 4.0 * (n - 1) / n * m);
        var perNode = summary.RootElement.GetProperty("bytes_per_node_per_step").EnumerateObject().ToList();
        Assert.Equal(n, perNode.Count);
        Assert.All(perNode, node => Assert.InRange(node.Value.GetDouble(), 0.8 * busiest, busiest));
    }

    /// <summary>
    /// The node that owns range 1 is killed: its range's optimizer state is gone, so the coordinator starts again from
    /// the newest checkpoint (steps 20, 40, …) over the nodes it has, and replays; the weights are those of one process.
    /// </summary>
    [Fact]
    public void A_range_owner_killed_mid_run_is_replaced_from_the_newest_checkpoint_and_the_weights_do_not_change()
    {
        using var temp = new TempFolder();
        string[] work = ["--layers", "784-64-10", "--epochs", "3", "--batch", "64", "--slices", "8", "--checkpoint-every", "20"];
        var oracle = Distbp.RunIn(temp.Path, ["train", "--workers", "1", .. work]);
        Assert.True(oracle.ExitCode == 0, oracle.ToString());
        var killed = Distbp.RunIn(temp.Path, ["simulate", "--nodes", "3", "--aggregation", "sharded", .. work, "--chaos", "kill:owner-1@50"]);
        Assert.True(killed.ExitCode == 0, killed.ToString());
        Assert.Equal(oracle.WeightsSha256, killed.WeightsSha256);

        // Owners are ordered by address, so range 1 may be on any node. On node-0, the coordinator's, the coordinator
        // dies with it and its successor resumes from the checkpoint; elsewhere the coordinator sees the owner go.
        var victim = killed.StdoutLines.Concat(killed.Stderr.Split('\n'))
            .Single(l => l.StartsWith("chaos: kill:owner-1@50 -> ", StringComparison.Ordinal))["chaos: kill:owner-1@50 -> ".Length..];
        var events = RunFolderTests.Lines(Path.Combine(RunFolderTests.PrintedRunFolder(killed), "events.jsonl"));
        var expected = victim.StartsWith("node-0 ", StringComparison.Ordinal) ? "coordinator-resumed" : "owner-lost";
        Assert.Contains(events, e => (string?)e["type"] == expected);
    }
}
