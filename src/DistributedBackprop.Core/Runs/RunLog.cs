using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;

namespace DistributedBackprop.Core.Runs;

/// <summary>One line of metrics.jsonl or events.jsonl; it writes itself as one JSON object.</summary>
public abstract class RunLine
{
    /// <summary>True for events.jsonl, false for metrics.jsonl.</summary>
    public abstract bool IsEvent { get; }

    public abstract void WriteTo(Utf8JsonWriter json);
}

/// <summary>
/// Appends metrics.jsonl and events.jsonl in the background, so that recording a step costs the training loop only an
/// enqueue: one dedicated thread wakes every <see cref="FlushInterval"/>, serialises what was queued with a reused
/// Utf8JsonWriter and appends it with one write per file. Every write holds whole lines, so a reader tailing the files
/// sees whole lines, except at the end of a file while it is being written (readers ignore an incomplete last line).
/// A write failure (disk full) stops the writing, never the training; <see cref="Error"/> says why.
/// </summary>
public sealed class RunLog : IDisposable
{
    public static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(200);

    private readonly ConcurrentQueue<RunLine> _queue = new();
    private readonly ManualResetEventSlim _closing = new();
    private readonly Thread _thread;
    private readonly FileStream _metrics;
    private readonly FileStream _events;
    private readonly ArrayBufferWriter<byte> _metricsBuffer = new(64 * 1024);
    private readonly ArrayBufferWriter<byte> _eventsBuffer = new(4 * 1024);
    private readonly ArrayBufferWriter<byte> _line = new(4 * 1024);
    private readonly Utf8JsonWriter _json;
    private int _disposed;

    private RunLog(RunFiles files, DateTime startedUtc)
    {
        Files = files;
        StartedUtc = startedUtc;
        Directory.CreateDirectory(files.Directory);
        _metrics = OpenForAppend(files.Metrics);
        try
        {
            _events = OpenForAppend(files.Events);
        }
        catch
        {
            _metrics.Dispose();
            throw;
        }
        // Relaxed escaping: the files are read as text (× and ' stay as they are), never embedded in HTML unescaped.
        _json = new Utf8JsonWriter(_line,
            new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        _thread = new Thread(WriteUntilClosed) { IsBackground = true, Name = "distbp-run-log" };
        _thread.Start();
    }

    public RunFiles Files { get; }

    /// <summary>When the run started; every line's elapsed_s counts from here.</summary>
    public DateTime StartedUtc { get; }

    /// <summary>Why writing stopped, or null while it works.</summary>
    public string? Error { get; private set; }

    /// <summary>Opens (creating or appending to) the run folder's line files.</summary>
    public static RunLog Open(RunFiles files, DateTime startedUtc) => new(files, startedUtc);

    public double ElapsedSeconds(DateTime utc) => Math.Max(0, (utc - StartedUtc).TotalSeconds);

    /// <summary>Queues a line; never blocks and never throws. Lines queued after <see cref="Dispose"/> are dropped.</summary>
    public void Write(RunLine line)
    {
        if (Volatile.Read(ref _disposed) == 0)
        {
            _queue.Enqueue(line);
        }
    }

    /// <summary>Writes everything queued so far, then closes the files.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _closing.Set();
        _thread.Join();
        _metrics.Dispose();
        _events.Dispose();
        _json.Dispose();
        _closing.Dispose();
    }

    /// <summary>
    /// Appends; a last line left incomplete (a writer killed mid-line, e.g. a coordinator on a lost node) is ended first,
    /// so the next writer's lines are never glued to it.
    /// </summary>
    private static FileStream OpenForAppend(string path)
    {
        var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete,
            bufferSize: 0);
        try
        {
            if (stream.Length > 0 && LastByte(path) != (byte)'\n')
            {
                stream.Write("\n"u8);
            }
            return stream;
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    private static int LastByte(string path)
    {
        using var reader = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        reader.Seek(-1, SeekOrigin.End);
        return reader.ReadByte();
    }

    private void WriteUntilClosed()
    {
        while (true)
        {
            var closing = _closing.Wait(FlushInterval);
            WriteQueued();
            if (closing)
            {
                return;
            }
        }
    }

    private void WriteQueued()
    {
        while (_queue.TryDequeue(out var line))
        {
            if (Error is not null)
            {
                continue;
            }
            // Each line is written whole to a scratch buffer first, so a line that fails half-way leaves nothing behind.
            _line.ResetWrittenCount();
            _json.Reset(_line);
            try
            {
                line.WriteTo(_json);
                _json.Flush();
            }
            catch (Exception)
            {
                // A line that cannot be written is a bug in that line: it is dropped, the training goes on.
                continue;
            }
            var buffer = line.IsEvent ? _eventsBuffer : _metricsBuffer;
            buffer.Write(_line.WrittenSpan);
            buffer.Write("\n"u8);
        }
        Append(_metrics, _metricsBuffer);
        Append(_events, _eventsBuffer);
    }

    private void Append(FileStream file, ArrayBufferWriter<byte> buffer)
    {
        if (buffer.WrittenCount == 0 || Error is not null)
        {
            buffer.ResetWrittenCount();
            return;
        }
        try
        {
            file.Write(buffer.WrittenSpan);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            Error = $"could not append to {file.Name}: {e.Message}";
        }
        buffer.ResetWrittenCount();
    }
}
