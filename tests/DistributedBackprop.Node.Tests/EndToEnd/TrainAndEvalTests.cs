using System.Globalization;
using System.Text.RegularExpressions;
using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>The main job end to end: train writes a model and a summary, eval agrees with it, results are reproducible.</summary>
public sealed partial class TrainAndEvalTests(TrainedModel trained) : IClassFixture<TrainedModel>
{
    public static readonly string[] DesignKeys =
    [
        "samples_per_second", "train_seconds", "steps", "epochs", "global_batch", "workers", "test_accuracy", "test_loss",
        "final_train_loss", "weights_sha256", "health", "faults",
    ];

    [Fact]
    public void Train_writes_a_model_and_a_summary_with_the_design_keys()
    {
        Assert.True(File.Exists(trained.ModelPath));
        foreach (var key in DesignKeys)
        {
            Assert.True(trained.Summary.RootElement.TryGetProperty(key, out _), $"summary lacks '{key}'");
        }
        Assert.Equal(40, trained["steps"].GetInt32());
        Assert.Equal(1, trained["epochs"].GetInt32());
        Assert.Equal(200, trained["global_batch"].GetInt32());
        Assert.Equal(Environment.ProcessorCount, trained["workers"].GetInt32()); // the default: one worker per core
        Assert.True(trained["samples_per_second"].GetDouble() > 0);
        Assert.InRange(trained["test_accuracy"].GetDouble(), 0.5, 1.0);
        Assert.Equal(System.Text.Json.JsonValueKind.Object, trained["health"].ValueKind);
        Assert.Equal(System.Text.Json.JsonValueKind.Object, trained["faults"].ValueKind);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(trained.ModelPath)!, "*.tmp"));
    }

    [Fact]
    public void Printed_weights_sha256_equals_the_summary_and_the_model()
    {
        var sha = trained.Run.WeightsSha256;
        Assert.Matches("^[0-9a-f]{64}$", sha);
        Assert.Equal(trained["weights_sha256"].GetString(), sha);
    }

    [Fact]
    public void Redirected_progress_is_plain_lines_one_per_epoch()
    {
        Assert.DoesNotContain('\r', trained.Run.Stdout);
        Assert.Single(trained.Run.StdoutLines, l => l.StartsWith("epoch 1/1 ", StringComparison.Ordinal));
        Assert.Equal("", trained.Run.Stderr);
    }

    [Fact]
    public void Eval_of_the_model_reports_the_summary_test_accuracy()
    {
        var run = Distbp.Run("eval", "--model", trained.ModelPath);
        Assert.True(run.ExitCode == 0, run.ToString());
        var match = AccuracyLine().Match(run.Stdout);
        Assert.True(match.Success, run.ToString());
        var accuracy = double.Parse(match.Groups["accuracy"].Value, CultureInfo.InvariantCulture) / 100;
        var loss = match.Groups["loss"].Value;
        // 2,000 test samples: every accuracy is a multiple of 0.05 %, so two decimals of a percentage are exact.
        Assert.Equal(trained["test_accuracy"].GetDouble(), accuracy, 1e-9);
        Assert.Equal(trained["test_loss"].GetDouble().ToString("F4", CultureInfo.InvariantCulture), loss);
        Assert.Equal(trained.Run.WeightsSha256, run.WeightsSha256);
    }

    [Fact]
    public void The_same_run_twice_gives_the_same_weights()
    {
        using var temp = new TempFolder();
        var again = Distbp.RunIn(temp.Path, TrainedModel.Args);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(trained.Run.WeightsSha256, again.WeightsSha256);
    }

    [Fact]
    public void The_thread_count_never_changes_the_weights()
    {
        using var temp = new TempFolder();
        string[] oneThread = [.. TrainedModel.Args[..^1], "1"];
        Assert.Equal("--threads", oneThread[^2]);
        var run = Distbp.RunIn(temp.Path, oneThread);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(trained.Run.WeightsSha256, run.WeightsSha256);
    }

    [Fact]
    public void The_worker_count_never_changes_the_weights()
    {
        using var temp = new TempFolder();
        string[] threeWorkers = [.. TrainedModel.Args, "--workers", "3"];
        var run = Distbp.RunIn(temp.Path, threeWorkers);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(trained.Run.WeightsSha256, run.WeightsSha256);
    }

    [GeneratedRegex(@"test accuracy (?<accuracy>[0-9.]+) ?%\s+test loss (?<loss>[0-9.]+)")]
    private static partial Regex AccuracyLine();
}
