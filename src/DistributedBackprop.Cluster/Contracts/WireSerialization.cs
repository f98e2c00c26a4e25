using Akka.Hosting;

namespace DistributedBackprop.Cluster.Contracts;

/// <summary>Binds every <see cref="IWireMessage"/> to <see cref="WireSerializer"/> (no fallback to Akka's JSON).</summary>
public static class WireSerialization
{
    /// <summary>Akka serializer identifier (outside Akka's reserved 1–100).</summary>
    public const int Identifier = 4141;

    /// <summary>The serializer's name in Akka's serializer table.</summary>
    public const string Name = "distbp-wire";

    /// <summary>Registers <see cref="WireSerializer"/> for <see cref="IWireMessage"/> and everything implementing it.</summary>
    public static AkkaConfigurationBuilder WithWireSerializer(this AkkaConfigurationBuilder builder) =>
        builder.WithCustomSerializer(Name, [typeof(IWireMessage)], system => new WireSerializer(system));
}
