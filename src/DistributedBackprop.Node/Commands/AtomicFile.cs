namespace DistributedBackprop.Node.Commands;

/// <summary>Writes a file through a temp file and a rename, so nobody ever sees half of it.</summary>
public static class AtomicFile
{
    public static void WriteAllText(string path, string text)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + $".{Environment.ProcessId}.tmp";
        try
        {
            File.WriteAllText(temp, text);
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
