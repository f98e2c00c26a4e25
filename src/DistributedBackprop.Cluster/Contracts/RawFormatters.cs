using System.Runtime.InteropServices;
using MessagePack;
using MessagePack.Formatters;

namespace DistributedBackprop.Cluster.Contracts;

/// <summary>A float[] as one MessagePack bin blob of little-endian float32s (not an array of MessagePack floats).</summary>
public sealed class RawFloatsFormatter : IMessagePackFormatter<float[]>
{
    public void Serialize(ref MessagePackWriter writer, float[] value, MessagePackSerializerOptions options)
    {
        writer.Write(MemoryMarshal.AsBytes(value.AsSpan()));
    }

    public float[] Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        var bytes = reader.ReadBytes() ?? throw new MessagePackSerializationException("A tensor blob was nil.");
        if (bytes.Length % sizeof(float) != 0)
        {
            throw new MessagePackSerializationException($"A float32 tensor blob of {bytes.Length} bytes is not a whole number of floats.");
        }
        var result = new float[bytes.Length / sizeof(float)];
        System.Buffers.BuffersExtensions.CopyTo(bytes, MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }
}

/// <summary>A double[] as one MessagePack bin blob of little-endian float64s.</summary>
public sealed class RawDoublesFormatter : IMessagePackFormatter<double[]>
{
    public void Serialize(ref MessagePackWriter writer, double[] value, MessagePackSerializerOptions options)
    {
        writer.Write(MemoryMarshal.AsBytes(value.AsSpan()));
    }

    public double[] Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        var bytes = reader.ReadBytes() ?? throw new MessagePackSerializationException("A tensor blob was nil.");
        if (bytes.Length % sizeof(double) != 0)
        {
            throw new MessagePackSerializationException($"A float64 tensor blob of {bytes.Length} bytes is not a whole number of doubles.");
        }
        var result = new double[bytes.Length / sizeof(double)];
        System.Buffers.BuffersExtensions.CopyTo(bytes, MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }
}
