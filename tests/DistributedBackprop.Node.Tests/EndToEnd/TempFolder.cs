using System.Buffers.Binary;
using System.IO.Compression;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>A fresh folder under the system temp folder, deleted after the test.</summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "distbp-e2e-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public string Write(string name, byte[] bytes)
    {
        var file = File(name);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(file)!);
        System.IO.File.WriteAllBytes(file, bytes);
        return file;
    }

    public string WriteText(string name, string text)
    {
        var file = File(name);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(file)!);
        System.IO.File.WriteAllText(file, text);
        return file;
    }

    public string Folder(string name)
    {
        var folder = File(name);
        Directory.CreateDirectory(folder);
        return folder;
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

/// <summary>Small, valid data files that tests break on purpose: 2x2 images (4 features), 3 classes.</summary>
public static class SmallData
{
    public const int TrainCount = 48;
    public const int TestCount = 12;
    public const string Layers = "4-8-3";

    public static byte[] Images(int count, int rows = 2, int columns = 2, uint magic = 0x00000803)
    {
        var bytes = new byte[16 + count * rows * columns];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, magic);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12), columns);
        for (var i = 16; i < bytes.Length; i++)
        {
            bytes[i] = (byte)(i * 37 % 256);
        }
        return bytes;
    }

    public static byte[] Labels(int count, uint magic = 0x00000801)
    {
        var bytes = new byte[8 + count];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, magic);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        for (var i = 0; i < count; i++)
        {
            bytes[8 + i] = (byte)(i % 3);
        }
        return bytes;
    }

    public static byte[] Gzip(byte[] plain)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
        {
            gzip.Write(plain);
        }
        return output.ToArray();
    }

    /// <summary>Writes the four standard IDX files into <paramref name="name"/> and returns the folder.</summary>
    public static string IdxFolder(TempFolder temp, string name = "idx", bool gzip = false)
    {
        var folder = temp.Folder(name);
        var suffix = gzip ? ".gz" : "";
        byte[] Pack(byte[] b) => gzip ? Gzip(b) : b;
        temp.Write($"{name}/train-images-idx3-ubyte{suffix}", Pack(Images(TrainCount)));
        temp.Write($"{name}/train-labels-idx1-ubyte{suffix}", Pack(Labels(TrainCount)));
        temp.Write($"{name}/t10k-images-idx3-ubyte{suffix}", Pack(Images(TestCount)));
        temp.Write($"{name}/t10k-labels-idx1-ubyte{suffix}", Pack(Labels(TestCount)));
        return folder;
    }

    /// <summary>A header and <paramref name="rows"/> rows: label, then four numeric features.</summary>
    public static string CsvText(int rows = TrainCount + TestCount)
    {
        var lines = new List<string> { "label,a,b,c,d" };
        for (var i = 0; i < rows; i++)
        {
            lines.Add($"{i % 3},{i * 0.5},{-i},{i % 7},{(i * 13) % 5}.25");
        }
        return string.Join('\n', lines) + "\n";
    }
}
