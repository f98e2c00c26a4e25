using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace DistributedBackprop.Core.Tests.Checkpoints;

/// <summary>
/// Model and checkpoint files as an attacker makes them: the header JSON or the body edited, then the SHA-256 trailer
/// recomputed, so the checksum is valid and only the content lies. (Shared with the end-to-end tests.)
/// </summary>
public static class CraftedModelFile
{
    private const int MagicLength = 8;

    /// <summary>A copy of <paramref name="file"/> whose header JSON <paramref name="edit"/> changed, with a valid trailer.</summary>
    public static byte[] WithHeader(byte[] file, Action<JsonObject> edit)
    {
        var (header, body) = Split(file);
        edit(header);
        return Assemble(file, System.Text.Encoding.UTF8.GetBytes(header.ToJsonString()), body);
    }

    /// <summary>A copy whose header JSON is replaced by <paramref name="json"/> as it is (any text), with a valid trailer.</summary>
    public static byte[] WithHeaderText(byte[] file, string json) =>
        Assemble(file, System.Text.Encoding.UTF8.GetBytes(json), Split(file).Body);

    /// <summary>A copy whose bytes after the header <paramref name="edit"/> changed, with a valid trailer.</summary>
    public static byte[] WithBody(byte[] file, Func<byte[], byte[]> edit)
    {
        var (header, body) = Split(file);
        return Assemble(file, System.Text.Encoding.UTF8.GetBytes(header.ToJsonString()), edit(body));
    }

    /// <summary>Any bytes after the signature, with a valid trailer: what a fuzzer feeds the reader.</summary>
    public static byte[] Resealed(byte[] content)
    {
        var file = new byte[content.Length + 32];
        content.CopyTo(file, 0);
        SHA256.HashData(content).CopyTo(file, content.Length);
        return file;
    }

    private static (JsonObject Header, byte[] Body) Split(byte[] file)
    {
        var length = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(MagicLength + 4));
        var start = MagicLength + 8;
        var header = JsonNode.Parse(file.AsSpan(start, length))!.AsObject();
        return (header, file[(start + length)..^32]);
    }

    private static byte[] Assemble(byte[] original, byte[] json, byte[] body)
    {
        var content = new byte[MagicLength + 8 + json.Length + body.Length];
        original.AsSpan(0, MagicLength + 4).CopyTo(content);
        BinaryPrimitives.WriteInt32LittleEndian(content.AsSpan(MagicLength + 4), json.Length);
        json.CopyTo(content, MagicLength + 8);
        body.CopyTo(content, MagicLength + 8 + json.Length);
        return Resealed(content);
    }
}
