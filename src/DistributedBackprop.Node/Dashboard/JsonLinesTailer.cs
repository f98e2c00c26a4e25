using System.Text;

namespace DistributedBackprop.Node.Dashboard;

/// <summary>
/// Reads an append-only JSON-lines file (metrics.jsonl, events.jsonl) a little at a time: each call returns the lines
/// completed since the last call. A last line without its newline is being written: it is left for a later call.
/// A file that is not there yet reads as empty; one that shrank was replaced, and is read again from the start.
/// </summary>
public sealed class JsonLinesTailer(string path)
{
    private long _offset;

    public string Path { get; } = path;

    /// <summary>Complete lines appended since the last call (blank lines dropped, a trailing '\r' removed).</summary>
    public IReadOnlyList<string> ReadNewLines()
    {
        byte[] appended;
        try
        {
            using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            if (stream.Length < _offset)
            {
                _offset = 0;
            }
            if (stream.Length == _offset)
            {
                return [];
            }
            stream.Seek(_offset, SeekOrigin.Begin);
            appended = new byte[stream.Length - _offset];
            stream.ReadExactly(appended);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return [];
        }

        var complete = Array.LastIndexOf(appended, (byte)'\n') + 1;
        if (complete == 0)
        {
            return [];
        }
        _offset += complete;
        var lines = new List<string>();
        foreach (var line in Encoding.UTF8.GetString(appended, 0, complete).Split('\n'))
        {
            var trimmed = line.TrimEnd('\r');
            if (!string.IsNullOrWhiteSpace(trimmed))
            {
                lines.Add(trimmed);
            }
        }
        return lines;
    }
}
