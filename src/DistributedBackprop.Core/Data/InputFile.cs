using System.IO.Compression;

namespace DistributedBackprop.Core.Data;

/// <summary>Reads a whole data file into memory, gunzipping it when it starts with the gzip magic bytes 1f 8b.</summary>
internal static class InputFile
{
    public static byte[] ReadAllBytes(string path)
    {
        byte[] raw;
        try
        {
            raw = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            var why = e is FileNotFoundException or DirectoryNotFoundException ? "does not exist" : $"cannot be read: {OneLine(e.Message)}";
            throw new DistbpInputException($"data: '{path}' {why}");
        }
        return Gunzip(raw, path);
    }

    public static byte[] ReadAllBytes(Stream stream, string source)
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return Gunzip(buffer.ToArray(), source);
    }

    public static bool IsGzip(ReadOnlySpan<byte> bytes) => bytes.Length >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;

    /// <summary>Squeezes an exception message onto one line, so user errors stay one line.</summary>
    public static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();

    private static byte[] Gunzip(byte[] raw, string source)
    {
        if (!IsGzip(raw))
        {
            return raw;
        }
        try
        {
            using var gzip = new GZipStream(new MemoryStream(raw, writable: false), CompressionMode.Decompress);
            using var plain = new MemoryStream();
            gzip.CopyTo(plain);
            return plain.ToArray();
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new DistbpInputException($"data: '{source}' starts like a gzip file but cannot be decompressed: {OneLine(e.Message)}");
        }
    }
}
