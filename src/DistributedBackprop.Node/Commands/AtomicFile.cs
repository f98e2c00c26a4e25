namespace DistributedBackprop.Node.Commands;

/// <summary>Output paths: checked before any training, so a run never ends unable to write its results.</summary>
public static class AtomicFile
{
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
