using System.Reflection;
using Xunit;

namespace DistributedBackprop.Node.Tests.Architecture;

/// <summary>
/// What may depend on what (docs/ARCHITECTURE.md): Core is pure — no Akka, no Cluster, no Node — so every distributed
/// result has a single-process oracle; Cluster never reaches up into the command line.
/// </summary>
public sealed class LayeringTests
{
    private static readonly Assembly Core = typeof(Core.Training.TrainingSetup).Assembly;
    private static readonly Assembly Cluster = typeof(Cluster.NodeContext).Assembly;

    private static IEnumerable<string> References(Assembly assembly) =>
        assembly.GetReferencedAssemblies().Select(a => a.Name!).Order(StringComparer.Ordinal);

    [Fact]
    public void Core_references_neither_akka_nor_the_cluster_nor_the_command_line()
    {
        var forbidden = References(Core).Where(name => name.StartsWith("Akka", StringComparison.Ordinal)
                                                       || name is "DistributedBackprop.Cluster" or "distbp").ToList();
        Assert.True(forbidden.Count == 0, $"Core references {string.Join(", ", forbidden)}");
    }

    [Fact]
    public void Cluster_does_not_reference_the_command_line()
    {
        Assert.DoesNotContain("distbp", References(Cluster));
        Assert.Contains("DistributedBackprop.Core", References(Cluster)); // the rule reads the real references
    }
}
