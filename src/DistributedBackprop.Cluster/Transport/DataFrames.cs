using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using DistributedBackprop.Cluster.Contracts;
using MessagePack;

namespace DistributedBackprop.Cluster.Transport;

/// <summary>A data-channel frame that breaks the format or its bounds; the connection that carried it is closed.</summary>
public class MalformedFrameException(string message) : Exception(message);

/// <summary>A frame whose length prefix is past the limit: refused before a byte of its body is read or held.</summary>
public sealed class OversizedFrameException(string message) : MalformedFrameException(message);

/// <summary>One frame read off a data connection: where it goes, as whom, and the message's manifest and payload.</summary>
public readonly record struct DataFrame(string TargetPath, string SenderPath, string Manifest, ReadOnlyMemory<byte> Payload);

/// <summary>An encoded frame in a pooled buffer: <c>Buffer[..Length]</c> is written to the socket as is.</summary>
public sealed class OutgoingFrame(byte[] buffer, int length, int payloadOffset, string manifest)
{
    public byte[] Buffer { get; } = buffer;
    public int Length { get; } = length;
    public string Manifest { get; } = manifest;
    public ReadOnlyMemory<byte> Bytes => Buffer.AsMemory(0, Length);
    public ReadOnlyMemory<byte> Payload => Buffer.AsMemory(payloadOffset, Length - payloadOffset);

    /// <summary>Gives the buffer back to the pool; the frame is unusable after.</summary>
    public void Release() => ArrayPool<byte>.Shared.Return(Buffer);
}

/// <summary>
/// The data channel's wire format (all integers little-endian). A connection opens with the handshake of
/// <see cref="DataChannelHandshake"/>; then each frame is
/// <c>int32 length | uint16 n, target path | uint16 n, sender path (0: no sender) | uint8 n, manifest | payload</c>,
/// where length counts the bytes after itself and the payload is the <see cref="WireSerializer"/> bytes of the message.
/// </summary>
public static class DataFrames
{
    public const int MaxPathBytes = 2048;
    public const int MaxManifestBytes = 64;

    /// <summary>Largest frame body any node accepts: the serializer's own payload cap plus the largest header. A node
    /// lowers it to what its job's messages need (<see cref="FrameLimitFor"/>).</summary>
    public const int MaxFrameBytes = WireSerializer.MaxPayloadBytes + HeaderBytes;

    private const int HeaderBytes = 2 + MaxPathBytes + 2 + MaxPathBytes + 1 + MaxManifestBytes;
    private const int LengthBytes = sizeof(int);

    /// <summary>
    /// The frame limit for a job whose largest tensor has <paramref name="floats"/> floats (a result vector or a weights
    /// version): the payload with room for MessagePack's framing and the other fields, plus the largest header.
    /// </summary>
    public static int FrameLimitFor(long floats) =>
        (int)Math.Min(MaxFrameBytes, 4 * floats + 64 * 1024 + HeaderBytes);

    /// <summary>
    /// Encodes one frame into a pooled buffer: header first, then the message serialized straight after it (no
    /// intermediate payload array). <paramref name="sizeHint"/> is the expected frame size, to avoid regrowing.
    /// </summary>
    public static OutgoingFrame Encode(string targetPath, string senderPath, string manifest, IWireMessage message, int sizeHint)
    {
        var target = Encoding.UTF8.GetBytes(targetPath);
        var sender = Encoding.UTF8.GetBytes(senderPath);
        var code = Encoding.UTF8.GetBytes(manifest);
        CheckLength(target.Length, MaxPathBytes, "target path");
        CheckLength(sender.Length, MaxPathBytes, "sender path");
        CheckLength(code.Length, MaxManifestBytes, "manifest");
        var headerBytes = LengthBytes + 2 + target.Length + 2 + sender.Length + 1 + code.Length;
        var writer = new PooledBufferWriter(Math.Max(sizeHint, headerBytes + 256));
        try
        {
            var header = writer.GetSpan(headerBytes);
            var at = LengthBytes;
            BinaryPrimitives.WriteUInt16LittleEndian(header[at..], (ushort)target.Length);
            target.CopyTo(header[(at += 2)..]);
            BinaryPrimitives.WriteUInt16LittleEndian(header[(at += target.Length)..], (ushort)sender.Length);
            sender.CopyTo(header[(at += 2)..]);
            header[at += sender.Length] = (byte)code.Length;
            code.CopyTo(header[(at += 1)..]);
            writer.Advance(headerBytes);
            MessagePackSerializer.Serialize(message.GetType(), writer, message, WireSerializer.Options);
            var bodyLength = writer.Written - LengthBytes;
            if (bodyLength > MaxFrameBytes)
            {
                throw new System.Runtime.Serialization.SerializationException(
                    $"A {message.GetType().Name} frame of {bodyLength} bytes exceeds the data channel's limit of {MaxFrameBytes} bytes.");
            }
            BinaryPrimitives.WriteInt32LittleEndian(writer.Buffer, bodyLength);
            return new OutgoingFrame(writer.Detach(), writer.Written, headerBytes, manifest);
        }
        catch
        {
            writer.Dispose();
            throw;
        }
    }

    /// <summary>Reads the frame length that precedes each body; throws for one outside 5..<paramref name="limit"/>.</summary>
    public static int BodyLength(ReadOnlySpan<byte> prefix, int limit = MaxFrameBytes)
    {
        var length = BinaryPrimitives.ReadInt32LittleEndian(prefix);
        if (length < 2 + 2 + 1 || length > limit)
        {
            throw new OversizedFrameException($"frame length {length} is outside 5..{limit}");
        }
        return length;
    }

    /// <summary>Splits a frame body (the bytes after the length) into its parts; throws for anything out of bounds.</summary>
    public static DataFrame Parse(ReadOnlyMemory<byte> body)
    {
        var span = body.Span;
        var at = 0;
        var target = Field(span, ref at, wide: true, MaxPathBytes, "target path");
        var sender = Field(span, ref at, wide: true, MaxPathBytes, "sender path");
        var manifest = Field(span, ref at, wide: false, MaxManifestBytes, "manifest");
        if (target.Length == 0 || manifest.Length == 0)
        {
            throw new MalformedFrameException("frame without a target path or a manifest");
        }
        return new DataFrame(target, sender, manifest, body[at..]);
    }

    private static string Field(ReadOnlySpan<byte> span, ref int at, bool wide, int max, string what)
    {
        var sizeBytes = wide ? 2 : 1;
        if (span.Length - at < sizeBytes)
        {
            throw new MalformedFrameException($"frame ends inside the {what}'s length");
        }
        int length = wide ? BinaryPrimitives.ReadUInt16LittleEndian(span[at..]) : span[at];
        at += sizeBytes;
        if (length > max || span.Length - at < length)
        {
            throw new MalformedFrameException($"the {what}'s length {length} exceeds {max} or the frame");
        }
        var text = Decode(span.Slice(at, length), what);
        at += length;
        return text;
    }

    private static string Decode(ReadOnlySpan<byte> bytes, string what)
    {
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new MalformedFrameException($"the {what} is not UTF-8");
        }
    }

    private static void CheckLength(int length, int max, string what)
    {
        if (length > max)
        {
            throw new ArgumentException($"The {what} is {length} bytes; the data channel allows {max}.");
        }
    }

    /// <summary>An <see cref="IBufferWriter{T}"/> over one growing array from <see cref="ArrayPool{T}.Shared"/>.</summary>
    private sealed class PooledBufferWriter(int initialSize) : IBufferWriter<byte>, IDisposable
    {
        private byte[]? _buffer = ArrayPool<byte>.Shared.Rent(initialSize);

        public byte[] Buffer => _buffer ?? throw new ObjectDisposedException(nameof(PooledBufferWriter));
        public int Written { get; private set; }

        public void Advance(int count) => Written += count;

        public Memory<byte> GetMemory(int sizeHint = 0) => Reserve(sizeHint).AsMemory(Written);

        public Span<byte> GetSpan(int sizeHint = 0) => Reserve(sizeHint).AsSpan(Written);

        private byte[] Reserve(int sizeHint)
        {
            var buffer = Buffer;
            var needed = Written + Math.Max(sizeHint, 1);
            if (needed <= buffer.Length)
            {
                return buffer;
            }
            var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(Array.MaxLength, Math.Max(needed, 2L * buffer.Length)));
            buffer.AsSpan(0, Written).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(buffer);
            return _buffer = bigger;
        }

        /// <summary>Hands the buffer over to the caller (who returns it to the pool).</summary>
        public byte[] Detach()
        {
            var buffer = Buffer;
            _buffer = null;
            return buffer;
        }

        public void Dispose()
        {
            if (_buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = null;
            }
        }
    }
}
