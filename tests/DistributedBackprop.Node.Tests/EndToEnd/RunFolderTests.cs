using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>One real <c>distbp train</c> in a fresh working folder, with --out and --summary-json, for the run folder tests.</summary>
public sealed class TrainedRunFolder : IDisposable
{
    /// <summary>2 epochs of 40 steps (8,000 samples, batch 200), a checkpoint every 15 steps.</summary>
    public static readonly string[] Job =
    [
        "train", "--layers", "784-16-10", "--epochs", "2", "--batch", "200", "--slices", "4", "--threads", "2",
        "--checkpoint-every", "15",
    ];

    public const int Steps = 80;

    public TrainedRunFolder()
    {
        ModelPath = Folder.File("out/model.distbp");
        SummaryPath = Folder.File("out/summary.json");
        Run = Distbp.RunIn(Folder.Path, [.. Job, "--out", ModelPath, "--summary-json", SummaryPath]);
        Assert.True(Run.ExitCode == 0, Run.ToString());
        RunDir = RunFolderTests.PrintedRunFolder(Run);
    }

    public TempFolder Folder { get; } = new();
    public string ModelPath { get; }
    public string SummaryPath { get; }
    public DistbpRun Run { get; }
    public string RunDir { get; }

    public void Dispose() => Folder.Dispose();
}

/// <summary>
/// Every run writes one run folder (issue 6): config.json, metrics.jsonl, events.jsonl, checkpoints/, summary.json and
/// model.distbp; a folder that holds a run is never overwritten; --resume appends to it.
/// </summary>
public sealed partial class RunFolderTests(TrainedRunFolder trained) : IClassFixture<TrainedRunFolder>
{
    /// <summary>Every key of a step line in the issue 6 contract.</summary>
    public static readonly string[] StepKeys =
    [
        "kind", "step", "epoch", "elapsed_s", "loss", "accuracy", "lr", "grad_norm", "grad_norm_clipped", "clipped", "clip",
        "layer_grad_norms", "layer_names", "dead_fractions", "samples_per_s", "compute_ms", "comm_ms", "coordinator_ms",
        "step_ms", "workers_alive", "slices", "stragglers", "skipped",
    ];

    [Fact]
    public void Train_writes_a_default_run_folder_with_every_file()
    {
        var runDir = trained.RunDir;
        Assert.Equal(Path.Combine(trained.Folder.Path, "runs"), Path.GetDirectoryName(runDir));
        Assert.Matches("^[0-9]{8}-[0-9]{6}-[0-9a-f]{12}$", Path.GetFileName(runDir));
        foreach (var file in new[] { "config.json", "metrics.jsonl", "events.jsonl", "summary.json", "model.distbp" })
        {
            Assert.True(File.Exists(Path.Combine(runDir, file)), $"{file} missing in {runDir}");
        }
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(runDir, "checkpoints"), "checkpoint-*.distbp"));

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "config.json")))!.AsObject();
        Assert.Equal("train", (string?)config["command"]);
        Assert.Equal("784-16-10", (string?)config["layers"]);
        Assert.Equal(5.0, (double)config["clip"]!);
        Assert.Equal(Summary()["config_hash"]!.GetValue<string>(), (string?)config["config_hash"]);
    }

    [Fact]
    public void Metrics_hold_one_step_line_per_step_with_every_key_and_an_eval_line_per_epoch()
    {
        var lines = Lines(Path.Combine(trained.RunDir, "metrics.jsonl"));
        var steps = lines.Where(l => (string?)l["kind"] == "step").ToList();
        Assert.Equal(Enumerable.Range(0, TrainedRunFolder.Steps).Select(s => (long)s), steps.Select(l => (long)l["step"]!));
        Assert.Equal(TrainedRunFolder.Steps, (long)Summary()["steps"]!);
        foreach (var step in steps)
        {
            Assert.Equal(StepKeys, step.Select(p => p.Key));
            Assert.Equal(["dense0", "dense1"], step["layer_names"]!.AsArray().Select(n => (string?)n));
            Assert.Equal(2, step["layer_grad_norms"]!.AsArray().Count);
            Assert.Single(step["dead_fractions"]!.AsArray());
            Assert.InRange((double)step["accuracy"]!, 0.0, 1.0);
            Assert.Equal(0.1f, (float)step["lr"]!);
            var computedSlices = step["slices"]!.AsObject().SelectMany(w => w.Value!.AsArray().Select(s => (int)s!)).Order();
            Assert.Equal([0, 1, 2, 3], computedSlices);
            Assert.Equal(2, (int)step["workers_alive"]!);
        }
        Assert.All(steps, l => Assert.Equal((long)l["step"]! / 40, (long)l["epoch"]!));

        var evals = lines.Where(l => (string?)l["kind"] == "eval").ToList();
        Assert.Equal([39L, 79L], evals.Select(l => (long)l["step"]!));
        Assert.Equal([0, 1], evals.Select(l => (int)l["epoch"]!));
        Assert.Equal(Summary()["test_accuracy"]!.GetValue<double>(), (double)evals[^1]["test_accuracy"]!);
        Assert.Equal(Summary()["test_loss"]!.GetValue<double>(), (double)evals[^1]["test_loss"]!);
        Assert.Equal(lines.Count, steps.Count + evals.Count);
    }

    [Fact]
    public void Events_record_the_cluster_the_checkpoints_and_the_run_finishing()
    {
        var events = Lines(Path.Combine(trained.RunDir, "events.jsonl"));
        Assert.All(events, e => Assert.Equal(
            ["time", "elapsed_s", "step", "kind", "type", "message", "fix", "node", "worker", "recovery_s"],
            e.Select(p => p.Key).Take(10)));
        var cluster = events.Last(e => (string?)e["kind"] == "cluster");
        var node = Assert.Single(cluster["nodes"]!.AsArray())!;
        Assert.True((bool)node["coordinator"]!);
        Assert.Equal(["worker-0", "worker-1"], node["workers"]!.AsArray().Select(w => (string?)w));
        var checkpoints = events.Where(e => (string?)e["type"] == "checkpoint-written").Select(e => (long)e["step"]!);
        Assert.Equal([15L, 30, 45, 60, 75], checkpoints);
        Assert.Equal("run-started", (string?)events.Single(e => (string?)e["kind"] == "info" && (long)e["step"]! == 0)["type"]);
        Assert.Equal("run-finished", (string?)events[^1]["type"]);
        Assert.Contains(trained.Run.WeightsSha256, (string?)events[^1]["message"]);
    }

    [Fact]
    public void The_run_folder_holds_the_same_model_and_summary_as_out_and_summary_json()
    {
        Assert.Equal(File.ReadAllBytes(trained.ModelPath), File.ReadAllBytes(Path.Combine(trained.RunDir, "model.distbp")));
        Assert.Equal(File.ReadAllBytes(trained.SummaryPath), File.ReadAllBytes(Path.Combine(trained.RunDir, "summary.json")));
        Assert.Equal(trained.Run.WeightsSha256, Summary()["weights_sha256"]!.GetValue<string>());
    }

    [Fact]
    public void Writing_the_step_lines_never_changes_the_weights()
    {
        using var temp = new TempFolder();
        var quiet = Distbp.RunWithEnvironment(temp.Path, new Dictionary<string, string> { ["DISTBP_METRICS"] = "off" },
            TrainedRunFolder.Job);
        Assert.True(quiet.ExitCode == 0, quiet.ToString());
        Assert.Equal(trained.Run.WeightsSha256, quiet.WeightsSha256);
        // Off means no step lines only; the evaluations are still there.
        var lines = Lines(Path.Combine(PrintedRunFolder(quiet), "metrics.jsonl"));
        Assert.All(lines, l => Assert.Equal("eval", (string?)l["kind"]));
        Assert.Equal(2, lines.Count);
    }

    [Fact]
    public void A_default_run_folder_name_already_taken_gets_the_next_suffix_and_is_left_alone()
    {
        using var temp = new TempFolder();
        string[] job = ["train", "--layers", "784-16-10", "--epochs", "1", "--batch", "400", "--slices", "4", "--threads", "2"];
        var hash = new TrainingOptions { Layers = "784-16-10", Epochs = 1, Batch = 400, Slices = 4 }.ConfigHash();
        // Every name the run could pick in the next two minutes is taken, each by a folder with something in it.
        var now = DateTime.UtcNow;
        for (var s = -2; s < 120; s++)
        {
            temp.WriteText($"runs/{now.AddSeconds(s):yyyyMMdd-HHmmss}-{hash}/notes.txt", "mine");
        }

        var run = Distbp.RunIn(temp.Path, job);

        Assert.True(run.ExitCode == 0, run.ToString());
        var runDir = PrintedRunFolder(run);
        Assert.EndsWith($"-{hash}-2", runDir);
        Assert.True(File.Exists(Path.Combine(runDir, "summary.json")), run.ToString());
        var taken = runDir[..^"-2".Length];
        Assert.Equal(["notes.txt"], Directory.GetFileSystemEntries(taken).Select(Path.GetFileName));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(taken, "notes.txt")));
    }

    [Fact]
    public void An_explicit_run_dir_that_holds_a_run_is_refused_and_left_alone()
    {
        using var temp = new TempFolder();
        var config = temp.WriteText("taken/config.json", """{"config_hash":"000000000000"}""");

        foreach (var command in new[] { "train", "simulate" })
        {
            string[] nodes = command == "simulate" ? ["--nodes", "2", "--log-dir", temp.File("logs")] : [];
            var run = Distbp.RunIn(temp.Path, [command, .. nodes, "--layers", "784-16-10", "--run-dir", temp.File("taken")]);
            BadInput.Check(run, "--run-dir");
            Assert.Contains("already holds a run", run.Stderr);
            Assert.Contains($"--resume {temp.File("taken")}", run.Stderr);
            Assert.Equal("", run.Stdout);
        }
        Assert.Equal(["config.json"], Directory.GetFileSystemEntries(temp.File("taken")).Select(Path.GetFileName));
        Assert.Equal("""{"config_hash":"000000000000"}""", File.ReadAllText(config));
        Assert.False(Directory.Exists(temp.File("logs")));
        Assert.False(Directory.Exists(temp.File("runs")));
    }

    [Fact]
    public void A_node_refuses_a_run_dir_that_holds_a_run_of_other_options()
    {
        using var temp = new TempFolder();
        temp.WriteText("other/config.json", """{"config_hash":"000000000000"}""");
        var run = Distbp.RunIn(temp.Path, ["node", "--layers", "784-16-10", "--run-dir", temp.File("other")]);
        BadInput.Check(run, "--run-dir");
        Assert.Contains("other training options", run.Stderr);
    }

    [Fact]
    public void Resume_continues_in_the_run_folder_and_appends_to_its_files()
    {
        using var temp = new TempFolder();
        var runDir = temp.File("run");
        var first = Distbp.RunIn(temp.Path, [.. TrainedRunFolder.Job, "--run-dir", runDir]);
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Equal(runDir, PrintedRunFolder(first));
        var config = File.ReadAllBytes(Path.Combine(runDir, "config.json"));
        // The newest checkpoint (step 75) is cut short, as a crash might leave it: the run resumes from step 60.
        File.WriteAllBytes(Path.Combine(runDir, "checkpoints", "checkpoint-000000075.distbp"), [1, 2, 3]);

        var resumed = Distbp.RunIn(temp.Path, ["train", "--resume", runDir]);

        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Equal(runDir, PrintedRunFolder(resumed));
        Assert.Equal(trained.Run.WeightsSha256, resumed.WeightsSha256);
        Assert.Equal(config, File.ReadAllBytes(Path.Combine(runDir, "config.json")));
        Assert.False(Directory.Exists(temp.File("runs")), "a resumed run made a new run folder");
        var steps = Lines(Path.Combine(runDir, "metrics.jsonl")).Where(l => (string?)l["kind"] == "step")
            .Select(l => (long)l["step"]!);
        Assert.Equal(Enumerable.Range(0, 80).Concat(Enumerable.Range(60, 20)).Select(s => (long)s), steps);
        var events = Lines(Path.Combine(runDir, "events.jsonl"));
        var resumedEvent = events.Single(e => (string?)e["type"] == "coordinator-resumed");
        Assert.Equal(60, (long)resumedEvent["step"]!);
        Assert.Equal("fault", (string?)resumedEvent["kind"]);
        Assert.NotNull(resumedEvent["recovery_s"]);
        Assert.Equal(2, events.Count(e => (string?)e["type"] == "run-finished"));
        Assert.Equal(resumed.WeightsSha256,
            JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "summary.json")))!["weights_sha256"]!.GetValue<string>());
    }

    /// <summary>The folder a run printed in its first line ("...; run folder DIR").</summary>
    public static string PrintedRunFolder(DistbpRun run)
    {
        var match = RunFolderLine().Match(run.Stdout);
        Assert.True(match.Success, $"no 'run folder' in the output; {run}");
        return match.Groups["dir"].Value;
    }

    /// <summary>Every line of a .jsonl file, each parsed (a line that is not a JSON object fails the test).</summary>
    public static List<JsonObject> Lines(string path) =>
        File.ReadAllLines(path).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    private JsonObject Summary() => JsonNode.Parse(File.ReadAllText(trained.SummaryPath))!.AsObject();

    [GeneratedRegex(@"run folder (?<dir>\S+)\r?$", RegexOptions.Multiline)]
    private static partial Regex RunFolderLine();
}
