using System.Runtime.InteropServices;
using System.Runtime.Serialization;
using Akka.Actor;
using DistributedBackprop.Cluster.Contracts;
using MessagePack;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Wire;

public sealed class WireSerializerTests : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("wire-serializer-tests");
    private readonly WireSerializer _serializer;

    public WireSerializerTests()
    {
        _serializer = new WireSerializer((ExtendedActorSystem)_system);
    }

    public void Dispose() => _system.Terminate().Wait(TimeSpan.FromSeconds(10));

    [Fact]
    public void Every_concrete_wire_message_has_a_distinct_manifest()
    {
        Assert.NotEmpty(WireSamples.ConcreteWireTypes);
        foreach (var type in WireSamples.ConcreteWireTypes)
        {
            Assert.True(WireSerializer.ManifestOf(type) is not null, $"{type.Name} has no manifest in WireSerializer's table.");
        }
        Assert.Equal(WireSerializer.Manifests.Count, WireSerializer.Manifests.Values.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(WireSerialization.Identifier, _serializer.Identifier);
        Assert.False(_serializer.Identifier is >= 1 and <= 100);
    }

    [Theory]
    [MemberData(nameof(WireSamples.WireTypeNames), MemberType = typeof(WireSamples))]
    public void Random_messages_round_trip_bit_for_bit(string typeName)
    {
        var type = WireSamples.TypeNamed(typeName);
        var rng = new Random(HashCode.Combine(typeName.Length, typeName[0], typeName[^1]) ^ 20261128);
        for (var i = 0; i < 300; i++)
        {
            var message = WireSamples.Random(type, rng);
            var manifest = _serializer.Manifest(message);
            var bytes = _serializer.ToBinary(message);
            var back = _serializer.FromBinary(bytes, manifest);
            WireSamples.AssertBitEqual(message, back);
        }
    }

    [Fact]
    public void Special_floats_and_empty_tensors_survive()
    {
        float[] special = [float.NaN, BitConverter.Int32BitsToSingle(unchecked((int)0xFFC00123)), float.PositiveInfinity,
            float.NegativeInfinity, -0f, 0f, float.Epsilon, -float.Epsilon, float.MaxValue, float.MinValue];
        var message = new WeightsVersion("run", 7, special, []);
        var back = _serializer.FromBinary(_serializer.ToBinary(message), _serializer.Manifest(message));
        WireSamples.AssertBitEqual(message, back);
        Assert.Empty(((WeightsVersion)back).Buffers);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(1000)]
    [InlineData(250_000)]
    public void Slice_result_tensor_is_a_raw_little_endian_blob(int n)
    {
        Assert.True(BitConverter.IsLittleEndian);
        var rng = new Random(n + 1);
        var sum = Enumerable.Range(0, n).Select(_ => WireSamples.RandomFloat(rng)).ToArray();
        var message = new SliceResult("run-0123456789", 123456, 42, 3, 17, sum, "worker-7", 0.125);
        var bytes = _serializer.ToBinary(message);
        Assert.True(bytes.Length <= 4 * n + 200, $"{bytes.Length} bytes for {n} floats");
        var raw = MemoryMarshal.AsBytes(sum.AsSpan());
        if (n > 0)
        {
            Assert.True(bytes.AsSpan().IndexOf(raw) >= 0, "the float bytes do not appear verbatim in the payload");
        }
    }

    [Fact]
    public void Statistics_doubles_are_a_raw_blob_too()
    {
        var mean = Enumerable.Range(0, 1000).Select(i => i * 0.5 - 3).ToArray();
        var message = new StatisticsResult("run", 1, 99, mean, mean);
        var bytes = _serializer.ToBinary(message);
        Assert.True(bytes.Length <= 2 * 8 * 1000 + 200);
        Assert.True(bytes.AsSpan().IndexOf(MemoryMarshal.AsBytes(mean.AsSpan())) >= 0);
    }

    [Fact]
    public void Unknown_manifest_throws_SerializationException()
    {
        var bytes = _serializer.ToBinary(new PullWeights("run", 1));
        var e = Assert.Throws<SerializationException>(() => _serializer.FromBinary(bytes, "no-such-manifest"));
        Assert.Contains("Unknown wire manifest", e.Message);
        Assert.Throws<SerializationException>(() => _serializer.FromBinary(bytes, ""));
    }

    [Theory]
    [MemberData(nameof(WireSamples.WireTypeNames), MemberType = typeof(WireSamples))]
    public void Every_truncation_throws_SerializationException(string typeName)
    {
        var rng = new Random(typeName.Length);
        var message = WireSamples.Random(WireSamples.TypeNamed(typeName), rng);
        var manifest = _serializer.Manifest(message);
        var bytes = _serializer.ToBinary(message);
        var step = Math.Max(1, bytes.Length / 500);
        for (var length = 0; length < bytes.Length; length += step)
        {
            Assert.Throws<SerializationException>(() => _serializer.FromBinary(bytes[..length], manifest));
        }
        Assert.Throws<SerializationException>(() => _serializer.FromBinary(bytes[..^1], manifest));
    }

    [Fact]
    public void Trailing_garbage_throws_SerializationException()
    {
        var bytes = _serializer.ToBinary(new PullWeights("run", 1));
        Assert.Throws<SerializationException>(() => _serializer.FromBinary([.. bytes, 0xC0], "pw"));
    }

    [Fact]
    public void Random_garbage_never_throws_anything_but_SerializationException()
    {
        var rng = new Random(4141);
        foreach (var manifest in WireSerializer.Manifests.Values)
        {
            for (var i = 0; i < 300; i++)
            {
                var bytes = new byte[rng.Next(0, 200)];
                rng.NextBytes(bytes);
                if (bytes.Length > 0 && rng.Next(2) == 0)
                {
                    bytes[0] = (byte)(0x90 | rng.Next(16)); // a plausible array header, so decoding goes deeper
                }
                try
                {
                    _serializer.FromBinary(bytes, manifest);
                }
                catch (SerializationException)
                {
                }
            }
        }
    }

    [Fact]
    public void Payload_of_the_wrong_type_throws_SerializationException()
    {
        var bytes = _serializer.ToBinary(new PullWeights("run", 1));
        Assert.Throws<SerializationException>(() => _serializer.FromBinary(bytes, WireSerializer.ManifestOf(typeof(SliceResult))!));
    }

    [Fact]
    public void Hostile_blob_length_and_ragged_tensor_throw_SerializationException()
    {
        // NormaliserReady = [RunId, Mean blob, Std blob]; claim a 2 GiB blob with 3 bytes behind it.
        byte[] hugeClaim = [0x93, 0xA1, (byte)'r', 0xC6, 0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3];
        Assert.Throws<SerializationException>(() => _serializer.FromBinary(hugeClaim, "nr"));
        // A 5-byte float32 blob is not a whole number of floats.
        byte[] ragged = [0x93, 0xA1, (byte)'r', 0xC4, 5, 1, 2, 3, 4, 5, 0xC4, 0];
        Assert.Throws<SerializationException>(() => _serializer.FromBinary(ragged, "nr"));
        // Nil where a tensor must be.
        byte[] nilTensor = [0x93, 0xA1, (byte)'r', 0xC0, 0xC4, 0];
        Assert.Throws<SerializationException>(() => _serializer.FromBinary(nilTensor, "nr"));
    }

    [Fact]
    public void Deeply_nested_payload_throws_SerializationException()
    {
        // UntrustedData caps the object graph depth; 10,000 nested arrays must be refused, not overflow the stack.
        var bytes = new byte[10_001];
        bytes.AsSpan(0, 10_000).Fill(0x91);
        bytes[^1] = 0xC0;
        Assert.Throws<SerializationException>(() => _serializer.FromBinary(bytes, "pw"));
    }

    [Fact]
    public void Oversized_payload_throws_SerializationException_before_decoding()
    {
        var bytes = GC.AllocateUninitializedArray<byte>(WireSerializer.MaxPayloadBytes + 1);
        var e = Assert.Throws<SerializationException>(() => _serializer.FromBinary(bytes, "wv"));
        Assert.Contains("exceeds the wire limit", e.Message);
    }

    [Fact]
    public void Options_use_untrusted_data_security()
    {
        Assert.Same(MessagePackSecurity.UntrustedData, WireSerializer.Options.Security);
    }
}
