using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>Bad options on the embedded data: each is refused with exit code 2 and one line naming the option.</summary>
public sealed class BadOptionTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    private static readonly string[] Quick = ["--layers", "784-16-10", "--epochs", "1", "--batch", "200", "--slices", "4"];

    private static string[] With(string option, string value) =>
        [.. Quick.Where((_, i) => Quick[i - i % 2] != option), option, value];

    [Theory]
    [InlineData("1")]
    [InlineData("1.5")]
    [InlineData("-0.1")]
    public void Dropout_rate_outside_zero_to_one_is_refused(string rate) =>
        BadInput.Train(_temp, "--dropout", With("--dropout", rate));

    [Theory]
    [InlineData("0")]
    [InlineData("-0.01")]
    public void Non_positive_learning_rate_is_refused(string lr) => BadInput.Train(_temp, "--lr", With("--lr", lr));

    [Theory]
    [InlineData("0")]
    [InlineData("-200")]
    public void Non_positive_batch_is_refused(string batch) => BadInput.Train(_temp, "--batch", With("--batch", batch));

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    public void Non_positive_epoch_count_is_refused(string epochs) =>
        BadInput.Train(_temp, "--epochs", With("--epochs", epochs));

    [Theory]
    [InlineData("784-0-10")]
    [InlineData("0-10")]
    [InlineData("784-16-")]
    public void Zero_or_missing_layer_width_is_refused(string layers) =>
        BadInput.Train(_temp, "--layers", With("--layers", layers));

    [Theory]
    [InlineData("784-65537-65537-10", "parameters")] // the parameter count wraps a 32-bit int
    [InlineData("784-1000000-1000000-10", "parameters")] // a 4 TB model
    [InlineData("784-2000000-10", "width 2000000")]
    [InlineData("784-99999999999-10", "width 99999999999")]
    public void Layers_too_large_for_any_network_are_refused_before_anything_is_allocated(string layers, string why)
    {
        var run = BadInput.Train(_temp, "--layers", With("--layers", layers));
        Assert.Contains(why, run.Stderr);
    }

    [Fact]
    public void A_network_larger_than_the_memory_the_process_may_use_is_refused_with_its_size()
    {
        // 19 M parameters fit every limit but not a pod's 768 MiB heap (weights, state and a buffer per slice).
        var run = Distbp.RunWithEnvironment(_temp.Path,
            new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = "0x30000000" },
            [.. With("--layers", "784-4000-4000-10").Prepend("train")]);
        BadInput.Check(run, "--layers");
        Assert.Contains("19,184,010 parameters", run.Stderr);
        Assert.Contains("GiB", run.Stderr);
    }

    [Theory]
    [InlineData("100-16-10", "784 features")]
    [InlineData("784-16-5", "10 classes")]
    public void Layers_that_do_not_match_the_data_are_refused(string layers, string why)
    {
        var run = BadInput.Train(_temp, "--layers", With("--layers", layers));
        Assert.Contains(why, run.Stderr);
    }

    [Fact]
    public void Batch_larger_than_the_training_data_is_refused()
    {
        var run = BadInput.Train(_temp, "--batch", With("--batch", "16000"));
        Assert.Contains("8000", run.Stderr);
    }

    [Fact]
    public void Batch_that_the_slice_count_does_not_divide_is_refused() =>
        BadInput.Train(_temp, "--slices", With("--slices", "3"));

    [Theory]
    [InlineData("--activation", "relu6")]
    [InlineData("--loss", "hinge")]
    [InlineData("--optimizer", "rmsprop")]
    [InlineData("--decay", "exponential")]
    public void Unknown_names_are_refused(string option, string name)
    {
        var run = BadInput.Train(_temp, option, With(option, name));
        Assert.Contains(name, run.Stderr);
    }

    [Theory]
    [InlineData("--learning-rate", "0.1")]
    [InlineData("--nodes", "3")]
    public void Unknown_flags_are_refused(string flag, string value) =>
        BadInput.Train(_temp, flag, [.. Quick, flag, value]);

    [Theory]
    [InlineData("--batch", "12x")]
    [InlineData("--epochs", "2.5")]
    [InlineData("--lr", "fast")]
    [InlineData("--seed", "-3")]
    public void Malformed_numbers_are_refused(string option, string value) =>
        BadInput.Train(_temp, option, With(option, value));

    [Fact]
    public void Option_without_its_value_is_refused() => BadInput.Train(_temp, "--epochs", ["--layers", "784-16-10", "--epochs"]);

    [Fact]
    public void Option_given_twice_is_refused() => BadInput.Train(_temp, "--epochs", [.. Quick, "--epochs", "2"]);

    [Fact]
    public void Non_positive_worker_count_is_refused() =>
        BadInput.Train(_temp, "--workers", With("--workers", "0"));

    [Fact]
    public void Checkpoint_dir_that_is_a_file_is_refused()
    {
        var file = _temp.WriteText("not-a-folder", "x");
        BadInput.Train(_temp, "--checkpoint-dir", With("--checkpoint-dir", file));
    }

    [Fact]
    public void Summary_path_that_is_a_folder_is_refused()
    {
        var folder = _temp.Folder("summary-folder");
        var run = Distbp.RunIn(_temp.Path, ["train", .. Quick, "--summary-json", folder]);
        BadInput.Check(run, "--summary-json");
    }

    [Fact]
    public void Unknown_command_is_refused() => BadInput.Check(Distbp.Run("tarin"), "tarin");

    [Fact]
    public void No_command_is_refused_with_one_line_on_stderr()
    {
        var run = Distbp.Run();
        BadInput.Check(run, "command");
        Assert.Contains("usage: distbp", run.Stdout);
    }

    /// <summary>
    /// The version set once in Directory.Build.props, with the commit of the clone it was built from (a build without
    /// git has none): what the assembly carries, printed on one line.
    /// </summary>
    [Fact]
    public void Version_prints_the_one_version_and_the_commit_and_exits_zero()
    {
        var run = Distbp.Run("--version");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("", run.Stderr);
        var line = Assert.Single(run.StdoutLines);
        Assert.Matches(@"^distbp \d+\.\d+\.\d+(\+[0-9a-f]{40})?$", line);
        Assert.Equal($"distbp {Program.Version}", line);
        var built = typeof(Program).Assembly.GetName().Version!;
        Assert.StartsWith($"distbp {built.Major}.{built.Minor}.{built.Build}", line);
    }

    [Fact]
    public void Help_lists_the_training_options_and_exits_zero()
    {
        var run = Distbp.Run("train", "--help");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("--summary-json FILE", run.Stdout);
        Assert.Equal("", run.Stderr);
    }
}
