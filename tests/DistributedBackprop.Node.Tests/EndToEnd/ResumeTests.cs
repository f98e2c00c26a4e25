using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary><c>--resume DIR</c> continues a stopped run from its newest valid checkpoint and ends with the same weights.</summary>
public sealed class ResumeTests
{
    private static readonly string[] Work = ["--layers", "784-16-10", "--epochs", "2", "--batch", "200", "--slices", "4"];

    [Fact]
    public void A_resumed_run_ends_with_the_weights_of_the_uninterrupted_run()
    {
        using var temp = new TempFolder();
        var checkpoints = temp.File("checkpoints");
        var full = Distbp.RunIn(temp.Path, ["train", .. Work, "--checkpoint-dir", checkpoints, "--checkpoint-every", "15"]);
        Assert.True(full.ExitCode == 0, full.ToString());

        // The newest checkpoint was cut short (a crash while writing would leave only a temp file, but a bad disk
        // might not): it must be skipped, and the run resumed from the one before.
        var files = Directory.GetFiles(checkpoints, "checkpoint-*.distbp").Order(StringComparer.Ordinal).ToList();
        Assert.True(files.Count >= 2, string.Join(", ", files));
        File.WriteAllBytes(files[^1], [1, 2, 3]);

        var resumed = Distbp.RunIn(temp.Path, ["train", "--resume", checkpoints]);
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Equal(full.WeightsSha256, resumed.WeightsSha256);
    }

    [Fact]
    public void Resume_with_changed_training_options_is_refused()
    {
        using var temp = new TempFolder();
        var checkpoints = temp.File("checkpoints");
        var run = Distbp.RunIn(temp.Path, ["train", .. Work, "--checkpoint-dir", checkpoints, "--checkpoint-every", "15"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var refused = Distbp.RunIn(temp.Path, ["train", "--resume", checkpoints, "--lr", "0.5"]);
        Assert.Equal(2, refused.ExitCode);
        Assert.StartsWith("distbp: --lr:", refused.Stderr.Trim());
    }
}
