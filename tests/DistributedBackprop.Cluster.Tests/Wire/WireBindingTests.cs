using Akka.Actor;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Transport;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Wire;

/// <summary>In ActorSystems built through <see cref="WireSerialization.WithWireSerializer"/>, nothing falls back to JSON.</summary>
public sealed class WireBindingTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Every_wire_message_resolves_to_WireSerializer(bool remoting)
    {
        var system = WireSamples.HostedSystem(remoting ? "binding-remote" : "binding-local", remoting);
        try
        {
            var rng = new Random(7);
            foreach (var type in WireSamples.ConcreteWireTypes)
            {
                var message = WireSamples.Random(type, rng);
                var serializer = system.Serialization.FindSerializerFor(message);
                Assert.IsType<WireSerializer>(serializer);
                Assert.Equal(WireSerialization.Identifier, serializer.Identifier);
                Assert.IsType<WireSerializer>(system.Serialization.FindSerializerForType(type));

                // and the system's own serialize/deserialize path round-trips it
                var bytes = serializer.ToBinary(message);
                var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, message);
                var back = system.Serialization.Deserialize(bytes, serializer.Identifier, manifest);
                WireSamples.AssertBitEqual(message, back);
            }
        }
        finally
        {
            await system.Terminate();
        }
    }

    [Fact]
    public async Task Remoting_frame_settings_are_raised_together()
    {
        var system = WireSamples.HostedSystem("frames", remoting: true);
        try
        {
            var config = system.Settings.Config;
            foreach (var key in new[] { "maximum-frame-size", "send-buffer-size", "receive-buffer-size" })
            {
                Assert.Equal(RemotingSettings.FrameBytes, config.GetByteSize("akka.remote.dot-netty.tcp." + key));
            }
            Assert.False(config.GetBoolean("akka.remote.dot-netty.tcp.batching.enabled"));
            Assert.Equal(RemotingSettings.LogFrameBytesAbove, config.GetByteSize("akka.remote.log-frame-size-exceeding"));
            Assert.True(RemotingSettings.FrameBytes > TensorTransport.DefaultChunkBytes + 1024);
        }
        finally
        {
            await system.Terminate();
        }
    }
}
