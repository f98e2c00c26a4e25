using System.Text;
using System.Text.Json.Nodes;

namespace DistributedBackprop.Node.Tests.Dashboard;

/// <summary>
/// A hand-made run folder in the format of issue 6's contract (config.json, metrics.jsonl, events.jsonl, summary.json):
/// 3 nodes, 3 workers, a 784-32-10 network, a worker lost at step 40 and recovered, a dead-ReLU warning. Lines can be
/// appended one at a time, so a test can watch a folder grow as a live run's would.
/// </summary>
public sealed class SampleRun
{
    public const int StepsPerEpoch = 50;
    public const string LostWorker = "worker-2";
    public static readonly string[] NodeAddresses = ["127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003"];

    public SampleRun(string dir)
    {
        Dir = dir;
        Directory.CreateDirectory(dir);
    }

    public string Dir { get; }

    public string Metrics => Path.Combine(Dir, "metrics.jsonl");

    public string Events => Path.Combine(Dir, "events.jsonl");

    public int StepsWritten { get; private set; }

    public int EvalsWritten { get; private set; }

    public int EventsWritten { get; private set; }

    /// <summary>A finished run of <paramref name="steps"/> steps: every file, the summary included.</summary>
    public static SampleRun Finished(string dir, int steps = 120)
    {
        var run = new SampleRun(dir);
        run.WriteConfig();
        run.WriteCluster(step: 0, NodeAddresses.Length);
        for (var step = 1; step <= steps; step++)
        {
            run.AppendStep(step);
        }
        run.WriteSummary(steps);
        return run;
    }

    public void WriteConfig() => File.WriteAllText(Path.Combine(Dir, "config.json"), new JsonObject
    {
        ["command"] = "simulate",
        ["config_hash"] = "3fa1c2d9",
        ["kernel"] = "avx2",
        ["started_utc"] = "2026-11-28T09:30:00Z",
        ["workers"] = 3,
        ["nodes"] = 3,
        ["clip"] = 5.0,
        ["layers"] = "784-32-10",
        ["activation"] = "relu",
        ["optimizer"] = "momentum",
        ["lr"] = 0.1,
        ["batch"] = 64,
        ["slices"] = 8,
        ["epochs"] = 3,
    }.ToJsonString());

    /// <summary>Appends the step line of <paramref name="step"/> (and, at an epoch's end, its eval line; at step 40 the fault).</summary>
    public void AppendStep(int step)
    {
        var workers = step > 40 ? new[] { "worker-0", "worker-1" } : ["worker-0", "worker-1", "worker-2"];
        var slices = new JsonObject();
        for (var w = 0; w < workers.Length; w++)
        {
            slices[workers[w]] = new JsonArray(Enumerable.Range(0, 8).Where(s => s % workers.Length == w).Select(s => (JsonNode)s).ToArray());
        }
        var loss = 2.3 * Math.Exp(-step / 40.0) + 0.25 + 0.05 * Math.Sin(step);
        var norm = step == 10 ? 9.0 : 3.0 * Math.Exp(-step / 80.0) + 0.5;
        var line = new JsonObject
        {
            ["kind"] = "step",
            ["step"] = step,
            ["epoch"] = (step - 1) / StepsPerEpoch,
            ["elapsed_s"] = Math.Round(step * 0.05, 3),
            ["loss"] = Math.Round(loss, 5),
            ["accuracy"] = Math.Round(Math.Min(0.95, 0.1 + step / 150.0), 4),
            ["lr"] = 0.1,
            ["grad_norm"] = norm,
            ["grad_norm_clipped"] = Math.Min(norm, 5.0),
            ["clipped"] = norm > 5.0,
            ["clip"] = 5.0,
            ["layer_grad_norms"] = new JsonArray(norm * 0.02, norm * 0.3, norm * 0.9),
            ["layer_names"] = new JsonArray("dense0", "dense1", "dense2"),
            ["dead_fractions"] = new JsonArray(Math.Round(0.05 + step / 1000.0, 4)),
            ["samples_per_s"] = 50_000 + 1000 * Math.Cos(step / 7.0),
            ["compute_ms"] = 3.1,
            ["comm_ms"] = 1.2,
            ["coordinator_ms"] = 0.4,
            ["step_ms"] = 4.9,
            ["workers_alive"] = workers.Length,
            ["slices"] = slices,
            ["stragglers"] = step == 25 ? new JsonArray("worker-1") : new JsonArray(),
            ["skipped"] = false,
        };
        AppendLine(Metrics, line);
        StepsWritten++;
        if (step == 40)
        {
            AppendEvent(new JsonObject
            {
                ["time"] = "2026-11-28T09:30:02.000Z",
                ["elapsed_s"] = 2.0,
                ["step"] = 40,
                ["kind"] = "fault",
                ["type"] = "worker-lost",
                ["message"] = "worker-2 on 127.0.0.1:4003 stopped answering; its slices went to worker-0 and worker-1.",
                ["fix"] = null,
                ["node"] = "akka.tcp://distbp@127.0.0.1:4003",
                ["worker"] = LostWorker,
                ["recovery_s"] = 1.02,
            });
            WriteCluster(step, 2);
        }
        if (step == 60)
        {
            AppendEvent(new JsonObject
            {
                ["time"] = "2026-11-28T09:30:03.000Z",
                ["elapsed_s"] = 3.0,
                ["step"] = 60,
                ["kind"] = "health",
                ["type"] = "dead-relu",
                ["message"] = "52% of the units of ReLU layer 1 never fired in epoch 1.",
                ["fix"] = "a lower --lr, or --activation leaky-relu",
                ["node"] = null,
                ["worker"] = null,
                ["recovery_s"] = null,
            });
        }
        if (step % StepsPerEpoch == 0)
        {
            AppendLine(Metrics, new JsonObject
            {
                ["kind"] = "eval",
                ["step"] = step,
                ["epoch"] = step / StepsPerEpoch - 1,
                ["elapsed_s"] = step * 0.05,
                ["test_loss"] = Math.Round(loss + 0.05, 5),
                ["test_accuracy"] = Math.Round(Math.Min(0.9, step / 160.0), 4),
            });
            EvalsWritten++;
        }
    }

    /// <summary>A cluster snapshot line: the first <paramref name="nodes"/> nodes, one worker each, node 0 the coordinator.</summary>
    public void WriteCluster(int step, int nodes) => AppendEvent(new JsonObject
    {
        ["time"] = "2026-11-28T09:30:00.000Z",
        ["elapsed_s"] = step * 0.05,
        ["step"] = step,
        ["kind"] = "cluster",
        ["type"] = "membership",
        ["nodes"] = new JsonArray(Enumerable.Range(0, nodes).Select(n => (JsonNode)new JsonObject
        {
            ["address"] = NodeAddresses[n],
            ["roles"] = new JsonArray("worker"),
            ["status"] = "up",
            ["coordinator"] = n == 0,
            ["workers"] = new JsonArray($"worker-{n}"),
        }).ToArray()),
        ["message"] = $"{nodes} nodes, {nodes} workers",
    });

    public void AppendEvent(JsonObject line)
    {
        AppendLine(Events, line);
        EventsWritten++;
    }

    public void WriteSummary(int steps) => File.WriteAllText(Path.Combine(Dir, "summary.json"), new JsonObject
    {
        ["samples_per_second"] = 50123.4,
        ["train_seconds"] = steps * 0.05,
        ["steps"] = steps,
        ["epochs"] = 3,
        ["global_batch"] = 64,
        ["workers"] = 3,
        ["nodes"] = 3,
        ["test_accuracy"] = 0.8612,
        ["test_loss"] = 0.4121,
        ["final_train_loss"] = 0.3977,
        ["weights_sha256"] = "9c1185a5c5e9fc54612808977ee8f548b2258d31bd1f8a6b8b1f0e8e8c6b7a10",
        ["health"] = new JsonObject { ["clipped_steps"] = 1, ["skipped_steps"] = 0 },
        ["faults"] = new JsonObject { ["injected"] = new JsonArray(), ["detected"] = new JsonArray(new JsonObject { ["kind"] = "worker-lost" }) },
        ["aggregation"] = "sharded",
        ["busiest_node_bytes_per_step"] = 2_900_000.0,
        ["bytes_per_node_per_step"] = new JsonObject
        {
            ["akka.tcp://distbp@10.0.0.2:4053"] = 2_900_000.0,
            ["akka.tcp://distbp@10.0.0.3:4053"] = 2_800_000.0,
        },
    }.ToJsonString());

    public static void AppendLine(string path, JsonObject line) =>
        File.AppendAllText(path, line.ToJsonString() + "\n", new UTF8Encoding(false));
}
