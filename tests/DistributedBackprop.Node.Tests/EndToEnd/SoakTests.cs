using System.Diagnostics;
using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>
/// Long runs of real node processes under the heap limit the Kubernetes pods get (1Gi limit, so .NET caps the heap at
/// 768 MiB: DOTNET_GCHeapHardLimit=0x30000000). Memory must stay flat: the coordinator's node once kept one parameter
/// vector a step and died of OutOfMemoryException after ~1,240 steps of the default model.
/// </summary>
[Collection(SoakCollection.Name)]
public sealed class SoakTests
{
    private const int Epochs = 100; // 31 steps an epoch on the embedded sample: 3,100 steps
    private const int WarmEpochs = 10;

    /// <summary>What a node may grow by after its warm-up: the old leak added ~30 MB an epoch, 2.7 GB over this run.</summary>
    private const long GrowthBound = 150L << 20;

    /// <summary>
    /// Sharded aggregation keeps more per node (each range owner's pieces, published ranges and optimizer state; each
    /// cache's assemblies): the same bound holds for it.
    /// </summary>
    [Theory]
    [InlineData("coordinator")]
    [InlineData("sharded")]
    public void Thousands_of_steps_on_two_nodes_under_a_pod_heap_limit_keep_every_node_flat(string aggregation)
    {
        using var temp = new TempFolder();
        using var run = RunningDistbp.StartWithEnvironment(temp.Path,
            new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = "0x30000000" },
            "simulate", "--nodes", "2", "--epochs", Epochs.ToString(), "--seed", "3", "--aggregation", aggregation,
            "--log-dir", temp.File("logs"));

        run.WaitUntil(() => run.Stdout.Contains($"epoch {WarmEpochs}/{Epochs} ", StringComparison.Ordinal),
            TimeSpan.FromMinutes(3), $"epoch {WarmEpochs}");
        var nodes = run.ChildPids();
        Assert.Equal(2, nodes.Count);
        var warm = nodes.ToDictionary(pid => pid, pid => RunningDistbp.ResidentBytes(pid) ?? 0);
        var peak = new Dictionary<int, long>(warm);
        var clock = Stopwatch.StartNew();
        // Sample each node's memory until the run ends (bounded: the whole run takes well under a minute here).
        while (!run.HasExited && clock.Elapsed < TimeSpan.FromMinutes(5))
        {
            foreach (var pid in nodes)
            {
                if (RunningDistbp.ResidentBytes(pid) is { } rss)
                {
                    peak[pid] = Math.Max(peak[pid], rss);
                }
            }
            run.WaitForExitOrTimeout(TimeSpan.FromMilliseconds(200));
        }
        var result = run.WaitForExit(TimeSpan.FromMinutes(1));

        Assert.True(result.ExitCode == 0, result + SimulateTests.NodeLogs(temp.File("logs")));
        Assert.Contains($"epoch {Epochs}/{Epochs} ", result.Stdout);
        foreach (var pid in nodes)
        {
            var growth = peak[pid] - warm[pid];
            Assert.True(growth < GrowthBound,
                $"node {pid} grew by {growth >> 20} MB after epoch {WarmEpochs} ({warm[pid] >> 20} MB -> peak {peak[pid] >> 20} MB)");
        }
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SoakCollection
{
    public const string Name = "long runs of real processes";
}
