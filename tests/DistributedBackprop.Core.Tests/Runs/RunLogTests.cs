using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using DistributedBackprop.Core.Runs;
using DistributedBackprop.Core.Tests.Data;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Core.Tests.Runs;

/// <summary>The run folder's line files: written in the background, whole lines, promptly, appended across writers.</summary>
public sealed class RunLogTests
{
    /// <summary>Every key of a step line in the issue 6 contract.</summary>
    public static readonly string[] StepKeys =
    [
        "kind", "step", "epoch", "elapsed_s", "loss", "accuracy", "lr", "grad_norm", "grad_norm_clipped", "clipped", "clip",
        "layer_grad_norms", "layer_names", "dead_fractions", "samples_per_s", "compute_ms", "comm_ms", "coordinator_ms",
        "step_ms", "workers_alive", "slices", "stragglers", "skipped",
    ];

    private static readonly DateTime Started = new(2026, 11, 28, 9, 30, 0, DateTimeKind.Utc);

    [Fact]
    public void A_line_reaches_the_file_promptly_while_the_log_stays_open()
    {
        using var folder = new TempDirectory();
        var files = new RunFiles(folder.Path);
        using var log = RunLog.Open(files, Started);

        log.Write(new EvalLine(39, 0, 1.5, 0.61, 0.79));

        var line = WaitForLines(files.Metrics, 1, TimeSpan.FromSeconds(5)).Single();
        var eval = JsonNode.Parse(line)!.AsObject();
        Assert.Equal("eval", (string?)eval["kind"]);
        Assert.Equal(39, (long)eval["step"]!);
        Assert.Equal(0.79, (double)eval["test_accuracy"]!);
    }

    [Fact]
    public void Every_queued_line_is_written_whole_and_in_order_when_the_log_closes()
    {
        using var folder = new TempDirectory();
        var files = new RunFiles(folder.Path);
        using (var log = RunLog.Open(files, Started))
        {
            for (var step = 0; step < 2000; step++)
            {
                log.Write(Step(step));
            }
        }

        var text = File.ReadAllText(files.Metrics);
        Assert.EndsWith("\n", text);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2000, lines.Length);
        for (var step = 0; step < lines.Length; step++)
        {
            var line = JsonNode.Parse(lines[step])!.AsObject();
            Assert.Equal(StepKeys, line.Select(p => p.Key));
            Assert.Equal(step, (long)line["step"]!);
        }
        var last = JsonNode.Parse(lines[^1])!.AsObject();
        Assert.Equal("""{"worker-0":[0,1,3],"worker-1":[2]}""", last["slices"]!.ToJsonString());
        Assert.Equal(["dense0", "dense1"], last["layer_names"]!.AsArray().Select(n => (string?)n));
        Assert.Equal(0.1f, (float)last["lr"]!);
        Assert.Equal("0.1", last["lr"]!.ToJsonString());
    }

    [Fact]
    public void Numbers_json_cannot_hold_are_written_as_null()
    {
        using var folder = new TempDirectory();
        var files = new RunFiles(folder.Path);
        using (var log = RunLog.Open(files, Started))
        {
            log.Write(new StepLine
            {
                Step = 3,
                Loss = double.NaN,
                GradientNorm = double.PositiveInfinity,
                ClippedGradientNorm = null,
                Skipped = true,
                LayerGradientNorms = [1.0, double.NaN],
                LayerNames = ["dense0", "dense1"],
                SliceWorkers = [null, "worker-1"],
            });
        }

        var line = JsonNode.Parse(File.ReadAllLines(files.Metrics).Single())!.AsObject();
        Assert.Null(line["loss"]);
        Assert.Null(line["grad_norm"]);
        Assert.Null(line["grad_norm_clipped"]);
        Assert.Null(line["dead_fractions"]);
        Assert.Equal("[1,null]", line["layer_grad_norms"]!.ToJsonString());
        Assert.Equal("""{"worker-1":[1]}""", line["slices"]!.ToJsonString());
        Assert.True((bool)line["skipped"]!);
    }

    [Fact]
    public void A_second_writer_appends_and_ends_a_cut_off_last_line_first()
    {
        using var folder = new TempDirectory();
        var files = new RunFiles(folder.Path);
        // A coordinator killed mid-write left half a line.
        File.WriteAllText(files.Metrics, """{"kind":"step","step":0}""" + "\n" + """{"kind":"step","st""");

        using (var log = RunLog.Open(files, Started))
        {
            log.Write(Step(1));
        }

        var lines = File.ReadAllLines(files.Metrics);
        Assert.Equal(3, lines.Length);
        Assert.Equal(0, (long)JsonNode.Parse(lines[0])!["step"]!);
        Assert.ThrowsAny<JsonException>(() => JsonNode.Parse(lines[1]));
        Assert.Equal(1, (long)JsonNode.Parse(lines[2])!["step"]!);
    }

    [Fact]
    public void Events_go_to_events_jsonl_with_their_extra_keys()
    {
        using var folder = new TempDirectory();
        var files = new RunFiles(folder.Path);
        using (var log = RunLog.Open(files, Started))
        {
            log.Write(new EventLine
            {
                Time = Started.AddSeconds(3.2),
                ElapsedSeconds = 3.2,
                Step = 40,
                Kind = "cluster",
                Type = "membership",
                Message = "1 node, 1 worker",
                Extra = new JsonObject { ["nodes"] = new JsonArray(new JsonObject { ["address"] = "127.0.0.1:4001" }) },
            });
        }

        Assert.False(File.Exists(files.Metrics) && new FileInfo(files.Metrics).Length > 0);
        var line = JsonNode.Parse(File.ReadAllLines(files.Events).Single())!.AsObject();
        Assert.Equal(
            ["time", "elapsed_s", "step", "kind", "type", "message", "fix", "node", "worker", "recovery_s", "nodes"],
            line.Select(p => p.Key));
        Assert.Equal("2026-11-28T09:30:03.200Z", (string?)line["time"]);
        Assert.Equal("127.0.0.1:4001", (string?)line["nodes"]![0]!["address"]);
    }

    [Fact]
    public void Config_json_claims_a_folder_once_and_keeps_when_the_run_started()
    {
        using var folder = new TempDirectory();
        var files = new RunFiles(Path.Combine(folder.Path, "run"));
        var options = new TrainingOptions { Layers = "4-8-3" };

        Assert.False(files.HoldsRun);
        Assert.True(files.TryCreateConfig(RunFiles.Describe(options, "train", 2, 1, Started)));
        Assert.False(files.TryCreateConfig(RunFiles.Describe(options, "simulate", 3, 3, Started.AddHours(1))));

        Assert.True(files.HoldsRun);
        Assert.Equal(Started, files.StartedUtc());
        Assert.Equal(options.ConfigHash(), files.ConfigHash());
        Assert.Equal("train", (string?)files.ReadConfig()!["command"]);
    }

    private static StepLine Step(long step) => new()
    {
        Step = step,
        Epoch = 0,
        ElapsedSeconds = step * 0.004,
        Loss = 0.5,
        Accuracy = 0.8,
        LearningRate = 0.1f,
        GradientNorm = 7.2,
        ClippedGradientNorm = 5.0,
        Clipped = true,
        Clip = 5.0,
        LayerGradientNorms = [0.1, 0.2],
        LayerNames = ["dense0", "dense1"],
        DeadFractions = [0.02],
        SamplesPerSecond = 52000,
        ComputeMs = 3.1,
        CommunicationMs = 1.2,
        CoordinatorMs = 0.4,
        StepMs = 4.7,
        WorkersAlive = 2,
        SliceWorkers = ["worker-0", "worker-0", "worker-1", "worker-0"],
        Stragglers = [],
    };

    /// <summary>Polls (a tailing reader would) until the file holds <paramref name="count"/> whole lines.</summary>
    private static string[] WaitForLines(string path, int count, TimeSpan deadline)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (File.Exists(path))
            {
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                var text = new StreamReader(stream).ReadToEnd();
                var whole = text[..(text.LastIndexOf('\n') + 1)].Split('\n', StringSplitOptions.RemoveEmptyEntries);
                if (whole.Length >= count)
                {
                    return whole;
                }
            }
            Assert.True(clock.Elapsed < deadline, $"{path}: fewer than {count} whole lines after {deadline}");
            Thread.Sleep(20);
        }
    }
}
