using System.Buffers.Binary;
using DistributedBackprop.Node.Tests.Dashboard;
using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;

namespace DistributedBackprop.Node.Tests.Report;

/// <summary><c>distbp report RUN_DIR</c>: the dashboard's charts of a run folder as a self-contained page and PNG plots.</summary>
public sealed class ReportTests
{
    private static readonly string[] Plots =
    [
        "loss.png", "accuracy.png", "throughput.png", "step-time.png", "grad-norm.png", "layer-grad-norms.png",
        "dead-units.png", "learning-rate.png",
    ];

    private static byte[] PngSignature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    [Fact]
    public void Report_writes_a_self_contained_page_holding_the_data_and_a_valid_png_per_chart()
    {
        using var temp = new TempFolder();
        var runDir = temp.Folder("runs/20261128-093000-3fa1c2d9");
        SampleRun.Finished(runDir, steps: 120);

        var run = Distbp.Run("report", runDir);

        Assert.True(run.ExitCode == 0, run.ToString());
        var reportDir = Path.Combine(runDir, "report");
        Assert.Equal(Plots.Append("index.html").Order(), Directory.GetFiles(reportDir).Select(Path.GetFileName).Order());
        foreach (var plot in Plots)
        {
            var bytes = File.ReadAllBytes(Path.Combine(reportDir, plot));
            Assert.True(bytes.AsSpan(0, 8).SequenceEqual(PngSignature), $"{plot} is not a PNG");
            Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(bytes, 12, 4));
            Assert.Equal(900, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)));
            Assert.Equal(480, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
            Assert.True(bytes.Length > 10_000, $"{plot} is only {bytes.Length} bytes: an empty picture?");
        }

        var html = File.ReadAllText(Path.Combine(reportDir, "index.html"));
        Assert.Contains("window.DISTBP_RUN = ", html);
        Assert.Contains("9c1185a5c5e9fc54612808977ee8f548b2258d31bd1f8a6b8b1f0e8e8c6b7a10", html); // the summary
        Assert.Contains("\"step\":120", html);
        Assert.Contains("worker-lost", html);
        Assert.Contains("a lower --lr, or --activation leaky-relu", html);
        // Self-contained: uPlot and the dashboard's script inlined, nothing loaded from anywhere.
        Assert.Contains("uPlot", html);
        Assert.DoesNotContain("<script src=", html);
        Assert.DoesNotContain("<link rel=\"stylesheet\" href=", html);
        Assert.DoesNotMatch(@"(src|href)\s*=\s*[""']?(https?:)?//", html);
        Assert.Contains($"report of {runDir}", run.Stdout);
    }

    [Fact]
    public void Report_of_a_real_train_run_folder_draws_every_chart()
    {
        using var temp = new TempFolder();
        var runDir = temp.File("run");
        var train = Distbp.RunIn(temp.Path, "train", "--layers", "784-16-10", "--epochs", "2", "--batch", "128", "--run-dir", runDir);
        Assert.True(train.ExitCode == 0, train.ToString());

        var run = Distbp.Run("report", runDir);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("2 evaluations", run.Stdout);
        Assert.Equal(Plots.Append("index.html").Order(),
            Directory.GetFiles(Path.Combine(runDir, "report")).Select(Path.GetFileName).Order());
        Assert.Contains(train.WeightsSha256, File.ReadAllText(Path.Combine(runDir, "report", "index.html")));
    }

    [Fact]
    public void Report_writes_where_out_says_and_leaves_no_temp_files()
    {
        using var temp = new TempFolder();
        var runDir = temp.Folder("run");
        SampleRun.Finished(runDir, steps: 20);
        var outDir = temp.File("elsewhere/plots");

        var run = Distbp.Run("report", runDir, "--out", outDir);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.True(File.Exists(Path.Combine(outDir, "index.html")));
        Assert.False(Directory.Exists(Path.Combine(runDir, "report")));
        Assert.Empty(Directory.GetFiles(temp.Path, "*.tmp", SearchOption.AllDirectories));
    }

    [Fact]
    public void Report_of_a_run_that_stopped_early_draws_what_there_is()
    {
        using var temp = new TempFolder();
        var sample = new SampleRun(temp.Path);
        sample.WriteConfig();
        for (var step = 1; step <= 12; step++)
        {
            sample.AppendStep(step);
        }
        File.AppendAllText(sample.Metrics, "{\"kind\":\"step\",\"step\":13,\"lo"); // killed mid-line

        var run = Distbp.Run("report", temp.Path);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("12 steps", run.Stdout);
        Assert.Contains("no summary", run.Stdout);
        // No eval line yet; the held-out loss is simply absent from the loss chart.
        Assert.True(File.Exists(Path.Combine(temp.Path, "report", "loss.png")));
    }

    [Fact]
    public void Report_on_a_folder_that_is_not_a_run_folder_exits_2_saying_what_is_missing()
    {
        using var temp = new TempFolder();
        var folder = temp.Folder("just-a-folder");
        temp.WriteText("just-a-folder/config.json", "{}");

        var run = Distbp.Run("report", folder);

        BadInput.Check(run, "report");
        Assert.Contains("no metrics.jsonl", run.Stderr);
        Assert.DoesNotContain("no config.json", run.Stderr);
        Assert.False(Directory.Exists(Path.Combine(folder, "report")));
    }

    [Fact]
    public void Report_on_a_folder_that_does_not_exist_exits_2()
    {
        using var temp = new TempFolder();
        BadInput.Check(Distbp.Run("report", temp.File("nowhere")), "report");
        BadInput.Check(Distbp.Run("report"), "report");
    }

    [Fact]
    public void Report_skips_a_fragment_a_killed_writer_left_and_draws_a_replayed_step_once()
    {
        using var temp = new TempFolder();
        var sample = new SampleRun(temp.Path);
        sample.WriteConfig();
        for (var step = 1; step <= 10; step++)
        {
            sample.AppendStep(step);
        }
        File.AppendAllText(sample.Metrics, "{\"kind\":\"step\",\"step\":11,\"lo\n"); // the coordinator was killed mid-line
        for (var step = 8; step <= 12; step++)
        {
            sample.AppendStep(step); // its successor replays from the checkpoint of step 7
        }

        var run = Distbp.Run("report", temp.Path);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("(12 steps", run.Stdout);
        Assert.Contains("1 unreadable line skipped", run.Stdout);
    }
}
