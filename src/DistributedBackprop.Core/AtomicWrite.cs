namespace DistributedBackprop.Core;

/// <summary>
/// Every output file is written to a temp file beside it, flushed, then renamed over the target: a reader sees the
/// old file or the whole new one, never half of it, and a failed write leaves no temp file behind.
/// </summary>
public static class AtomicWrite
{
    public static void Bytes(string path, ReadOnlySpan<byte> bytes)
    {
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(directory);
        var temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    public static void Text(string path, string text) => Bytes(path, System.Text.Encoding.UTF8.GetBytes(text));

    public static void Copy(string source, string destination) => Bytes(destination, File.ReadAllBytes(source));
}
