namespace DistributedBackprop.Node.Commands;

/// <summary>Output paths: checked before any work, so a command never ends unable to write its results.</summary>
public static class AtomicFile
{
    /// <summary>
    /// Writes <paramref name="bytes"/> with <see cref="Core.AtomicWrite"/>: a path that cannot be written is an input error
    /// naming the option (exit 2), and neither the target nor a temp file is left half-written.
    /// </summary>
    public static void Write(string path, string option, ReadOnlySpan<byte> bytes)
    {
        CheckWritable(path, option);
        try
        {
            Core.AtomicWrite.Bytes(path, bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new Core.DistbpInputException($"--{option}: cannot write '{path}': {e.Message.ReplaceLineEndings(" ")}");
        }
    }

    /// <summary>Fails early (before any training) when an output path can never be written.</summary>
    public static void CheckWritable(string? path, string option)
    {
        if (path is null)
        {
            return;
        }
        if (Directory.Exists(path))
        {
            throw new Core.DistbpInputException($"--{option}: '{path}' is a folder; give a file path.");
        }
        var parent = Path.GetDirectoryName(Path.GetFullPath(path));
        if (parent is not null && File.Exists(parent))
        {
            throw new Core.DistbpInputException($"--{option}: '{parent}' is a file, not a folder.");
        }
    }
}
