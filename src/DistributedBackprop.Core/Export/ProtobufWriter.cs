using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace DistributedBackprop.Core.Export;

/// <summary>
/// The protobuf wire format, only as far as an ONNX file needs it: varints, 32-bit floats, length-delimited strings,
/// bytes and nested messages. A nested message is written into its own writer first, because its length goes before it.
/// Fields are written in the order the caller gives; protobuf readers accept any order.
/// </summary>
public sealed class ProtobufWriter
{
    private const int Varint = 0;
    private const int LengthDelimited = 2;
    private const int Fixed32 = 5;

    private readonly MemoryStream _bytes = new();

    public ProtobufWriter Int(int field, long value)
    {
        Tag(field, Varint);
        // int32 and int64 fields: a negative value is its two's complement as a 10-byte varint.
        WriteVarint((ulong)value);
        return this;
    }

    public ProtobufWriter Float(int field, float value)
    {
        Tag(field, Fixed32);
        Span<byte> buffer = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(buffer, value);
        _bytes.Write(buffer);
        return this;
    }

    public ProtobufWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public ProtobufWriter Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, LengthDelimited);
        WriteVarint((ulong)value.Length);
        _bytes.Write(value);
        return this;
    }

    /// <summary>float32 values as little-endian bytes (what ONNX's TensorProto.raw_data holds).</summary>
    public ProtobufWriter Floats(int field, ReadOnlySpan<float> values)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ONNX raw tensor data is little-endian; big-endian hosts are not supported.");
        }
        return Bytes(field, MemoryMarshal.AsBytes(values));
    }

    public ProtobufWriter Message(int field, ProtobufWriter message) =>
        Bytes(field, message._bytes.GetBuffer().AsSpan(0, (int)message._bytes.Length));

    public byte[] ToArray() => _bytes.ToArray();

    private void Tag(int field, int wireType) => WriteVarint((ulong)((field << 3) | wireType));

    private void WriteVarint(ulong value)
    {
        while (value >= 0x80)
        {
            _bytes.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        _bytes.WriteByte((byte)value);
    }
}
