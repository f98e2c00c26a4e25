using System.Buffers.Binary;
using System.IO.Compression;
using DistributedBackprop.Core;
using Xunit;

namespace DistributedBackprop.Core.Tests.Data;

/// <summary>A fresh directory under the system temp folder, deleted after the test.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "distbp-data-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Write(string name, byte[] bytes)
    {
        var file = System.IO.Path.Combine(Path, name);
        File.WriteAllBytes(file, bytes);
        return file;
    }

    public string WriteText(string name, string text)
    {
        var file = System.IO.Path.Combine(Path, name);
        File.WriteAllText(file, text);
        return file;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder is harmless; never fail a test over clean-up.
        }
    }
}

/// <summary>Builds IDX files byte by byte, so tests can break them on purpose.</summary>
internal static class Idx
{
    public static byte[] Images(int count, int rows, int columns, Func<int, byte>? pixel = null, uint magic = 0x00000803)
    {
        var bytes = new byte[16 + count * rows * columns];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, magic);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12), columns);
        for (var i = 0; i < count * rows * columns; i++)
        {
            bytes[16 + i] = pixel?.Invoke(i) ?? (byte)(i * 7 % 256);
        }
        return bytes;
    }

    public static byte[] Labels(byte[] labels, uint magic = 0x00000801)
    {
        var bytes = new byte[8 + labels.Length];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, magic);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), labels.Length);
        labels.CopyTo(bytes, 8);
        return bytes;
    }

    /// <summary>Labels 0,1,2,0,1,2,... for <paramref name="count"/> images.</summary>
    public static byte[] Labels(int count, int classes = 3) =>
        Labels(Enumerable.Range(0, count).Select(i => (byte)(i % classes)).ToArray());

    public static byte[] Gzip(byte[] plain)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
        {
            gzip.Write(plain);
        }
        return output.ToArray();
    }
}

internal static class Expect
{
    /// <summary>Asserts a one-line <see cref="DistbpInputException"/> whose message contains every fragment.</summary>
    public static DistbpInputException InputError(Action action, params string[] fragments)
    {
        var error = Assert.Throws<DistbpInputException>(action);
        Assert.DoesNotContain('\n', error.Message);
        Assert.DoesNotContain('\r', error.Message);
        foreach (var fragment in fragments)
        {
            Assert.Contains(fragment, error.Message);
        }
        return error;
    }
}
