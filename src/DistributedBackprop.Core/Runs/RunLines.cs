using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DistributedBackprop.Core.Runs;

/// <summary>
/// A step line of metrics.jsonl (kind "step"), filled by the coordinator after it applied (or skipped) a step. Arrays
/// are the line's own copies; it is serialised later, on the run log's thread.
/// </summary>
public sealed class StepLine : RunLine
{
    public long Step { get; init; }
    public int Epoch { get; init; }
    public double ElapsedSeconds { get; init; }
    public double Loss { get; init; }
    public double? Accuracy { get; init; }
    /// <summary>A float, as the optimizer uses it (written in its shortest form: 0.1, not 0.10000000149011612).</summary>
    public float LearningRate { get; init; }
    public double GradientNorm { get; init; }
    /// <summary>The norm after clipping; null for a skipped step (nothing was applied).</summary>
    public double? ClippedGradientNorm { get; init; }
    public bool Clipped { get; init; }
    /// <summary>The clip threshold; null when clipping is off.</summary>
    public double? Clip { get; init; }
    public double[] LayerGradientNorms { get; init; } = [];
    public string[] LayerNames { get; init; } = [];
    /// <summary>Per ReLU layer; null where not known (no ReLU layer, or a skipped step).</summary>
    public double[]? DeadFractions { get; init; }
    public double SamplesPerSecond { get; init; }
    public double ComputeMs { get; init; }
    public double CommunicationMs { get; init; }
    public double CoordinatorMs { get; init; }
    public double StepMs { get; init; }
    public int WorkersAlive { get; init; }
    /// <summary>Who computed each slice, by slice id (null: not known).</summary>
    public string?[] SliceWorkers { get; init; } = [];
    /// <summary>Workers whose slices got a speculative copy this step.</summary>
    public string[] Stragglers { get; init; } = [];
    public bool Skipped { get; init; }

    public override bool IsEvent => false;

    public override void WriteTo(Utf8JsonWriter json)
    {
        Json.StartMetricsLine(json, Names.StepKind, Step, Epoch, ElapsedSeconds);
        Json.Number(json, Names.Loss, Loss);
        Json.Number(json, Names.Accuracy, Accuracy);
        if (float.IsFinite(LearningRate))
        {
            json.WriteNumber(Names.LearningRate, LearningRate);
        }
        else
        {
            json.WriteNull(Names.LearningRate);
        }
        Json.Number(json, Names.GradientNorm, GradientNorm);
        Json.Number(json, Names.ClippedGradientNorm, ClippedGradientNorm);
        json.WriteBoolean(Names.Clipped, Clipped);
        Json.Number(json, Names.Clip, Clip);
        Json.Numbers(json, Names.LayerGradientNorms, LayerGradientNorms);
        json.WriteStartArray(Names.LayerNames);
        foreach (var name in LayerNames)
        {
            json.WriteStringValue(name);
        }
        json.WriteEndArray();
        Json.Numbers(json, Names.DeadFractions, DeadFractions);
        Json.Number(json, Names.SamplesPerSecond, Math.Round(SamplesPerSecond, 1));
        Json.Number(json, Names.ComputeMs, Math.Round(ComputeMs, 3));
        Json.Number(json, Names.CommunicationMs, Math.Round(CommunicationMs, 3));
        Json.Number(json, Names.CoordinatorMs, Math.Round(CoordinatorMs, 3));
        Json.Number(json, Names.StepMs, Math.Round(StepMs, 3));
        json.WriteNumber(Names.WorkersAlive, WorkersAlive);
        WriteSlices(json);
        json.WriteStartArray(Names.Stragglers);
        foreach (var worker in Stragglers)
        {
            json.WriteStringValue(worker);
        }
        json.WriteEndArray();
        json.WriteBoolean(Names.Skipped, Skipped);
        json.WriteEndObject();
    }

    /// <summary>"slices": {"worker-0": [0, 1, 2], ...}, workers in the order of their first slice.</summary>
    private void WriteSlices(Utf8JsonWriter json)
    {
        json.WriteStartObject(Names.Slices);
        for (var s = 0; s < SliceWorkers.Length; s++)
        {
            var worker = SliceWorkers[s];
            if (worker is null || Array.IndexOf(SliceWorkers, worker) != s)
            {
                continue;
            }
            json.WriteStartArray(worker);
            for (var t = s; t < SliceWorkers.Length; t++)
            {
                if (SliceWorkers[t] == worker)
                {
                    json.WriteNumberValue(t);
                }
            }
            json.WriteEndArray();
        }
        json.WriteEndObject();
    }
}

/// <summary>An eval line of metrics.jsonl: the held-out split after the last step of an epoch.</summary>
public sealed class EvalLine(long step, int epoch, double elapsedSeconds, double testLoss, double testAccuracy) : RunLine
{
    public override bool IsEvent => false;

    public override void WriteTo(Utf8JsonWriter json)
    {
        Json.StartMetricsLine(json, Names.EvalKind, step, epoch, elapsedSeconds);
        Json.Number(json, Names.TestLoss, testLoss);
        Json.Number(json, Names.TestAccuracy, testAccuracy);
        json.WriteEndObject();
    }
}

/// <summary>
/// A line of events.jsonl: a fault, a health warning, a membership change, a cluster snapshot, a checkpoint or a note
/// on the run (kind "info"). Events are rare, so <see cref="Extra"/> may carry any further keys (a snapshot's nodes).
/// </summary>
public sealed class EventLine : RunLine
{
    public required DateTime Time { get; init; }
    public required double ElapsedSeconds { get; init; }
    public long? Step { get; init; }
    /// <summary>fault | health | membership | cluster | checkpoint | info.</summary>
    public required string Kind { get; init; }
    public required string Type { get; init; }
    public required string Message { get; init; }
    public string? Fix { get; init; }
    public string? Node { get; init; }
    public string? Worker { get; init; }
    public double? RecoverySeconds { get; init; }
    public JsonObject? Extra { get; init; }

    public override bool IsEvent => true;

    public override void WriteTo(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteString(Names.Time, Time.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture));
        Json.Number(json, Names.ElapsedSeconds, Math.Round(ElapsedSeconds, 3));
        Json.Number(json, Names.Step, Step);
        json.WriteString(Names.Kind, Kind);
        json.WriteString(Names.Type, Type);
        json.WriteString(Names.Message, Message);
        Json.String(json, Names.Fix, Fix);
        Json.String(json, Names.Node, Node);
        Json.String(json, Names.Worker, Worker);
        Json.Number(json, Names.RecoverySeconds, RecoverySeconds is { } r ? Math.Round(r, 3) : null);
        foreach (var (key, value) in Extra ?? [])
        {
            json.WritePropertyName(key);
            if (value is null)
            {
                json.WriteNullValue();
            }
            else
            {
                value.WriteTo(json);
            }
        }
        json.WriteEndObject();
    }
}

/// <summary>Property names, encoded once (a step line is written hundreds of times a second).</summary>
internal static class Names
{
    public static readonly JsonEncodedText Kind = JsonEncodedText.Encode("kind");
    public static readonly JsonEncodedText StepKind = JsonEncodedText.Encode("step");
    public static readonly JsonEncodedText EvalKind = JsonEncodedText.Encode("eval");
    public static readonly JsonEncodedText Step = JsonEncodedText.Encode("step");
    public static readonly JsonEncodedText Epoch = JsonEncodedText.Encode("epoch");
    public static readonly JsonEncodedText ElapsedSeconds = JsonEncodedText.Encode("elapsed_s");
    public static readonly JsonEncodedText Loss = JsonEncodedText.Encode("loss");
    public static readonly JsonEncodedText Accuracy = JsonEncodedText.Encode("accuracy");
    public static readonly JsonEncodedText LearningRate = JsonEncodedText.Encode("lr");
    public static readonly JsonEncodedText GradientNorm = JsonEncodedText.Encode("grad_norm");
    public static readonly JsonEncodedText ClippedGradientNorm = JsonEncodedText.Encode("grad_norm_clipped");
    public static readonly JsonEncodedText Clipped = JsonEncodedText.Encode("clipped");
    public static readonly JsonEncodedText Clip = JsonEncodedText.Encode("clip");
    public static readonly JsonEncodedText LayerGradientNorms = JsonEncodedText.Encode("layer_grad_norms");
    public static readonly JsonEncodedText LayerNames = JsonEncodedText.Encode("layer_names");
    public static readonly JsonEncodedText DeadFractions = JsonEncodedText.Encode("dead_fractions");
    public static readonly JsonEncodedText SamplesPerSecond = JsonEncodedText.Encode("samples_per_s");
    public static readonly JsonEncodedText ComputeMs = JsonEncodedText.Encode("compute_ms");
    public static readonly JsonEncodedText CommunicationMs = JsonEncodedText.Encode("comm_ms");
    public static readonly JsonEncodedText CoordinatorMs = JsonEncodedText.Encode("coordinator_ms");
    public static readonly JsonEncodedText StepMs = JsonEncodedText.Encode("step_ms");
    public static readonly JsonEncodedText WorkersAlive = JsonEncodedText.Encode("workers_alive");
    public static readonly JsonEncodedText Slices = JsonEncodedText.Encode("slices");
    public static readonly JsonEncodedText Stragglers = JsonEncodedText.Encode("stragglers");
    public static readonly JsonEncodedText Skipped = JsonEncodedText.Encode("skipped");
    public static readonly JsonEncodedText TestLoss = JsonEncodedText.Encode("test_loss");
    public static readonly JsonEncodedText TestAccuracy = JsonEncodedText.Encode("test_accuracy");
    public static readonly JsonEncodedText Time = JsonEncodedText.Encode("time");
    public static readonly JsonEncodedText Type = JsonEncodedText.Encode("type");
    public static readonly JsonEncodedText Message = JsonEncodedText.Encode("message");
    public static readonly JsonEncodedText Fix = JsonEncodedText.Encode("fix");
    public static readonly JsonEncodedText Node = JsonEncodedText.Encode("node");
    public static readonly JsonEncodedText Worker = JsonEncodedText.Encode("worker");
    public static readonly JsonEncodedText RecoverySeconds = JsonEncodedText.Encode("recovery_s");
}

/// <summary>Writing helpers. JSON has no NaN or Infinity: a non-finite number is written as null ("not known").</summary>
internal static class Json
{
    /// <summary>What every metrics.jsonl line starts with: {"kind", "step", "epoch", "elapsed_s".</summary>
    public static void StartMetricsLine(Utf8JsonWriter json, JsonEncodedText kind, long step, int epoch, double elapsedSeconds)
    {
        json.WriteStartObject();
        json.WriteString(Names.Kind, kind);
        json.WriteNumber(Names.Step, step);
        json.WriteNumber(Names.Epoch, epoch);
        Number(json, Names.ElapsedSeconds, Math.Round(elapsedSeconds, 3));
    }

    public static void Number(Utf8JsonWriter json, JsonEncodedText name, double? value)
    {
        if (value is { } v && double.IsFinite(v))
        {
            json.WriteNumber(name, v);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    public static void Number(Utf8JsonWriter json, JsonEncodedText name, long? value)
    {
        if (value is { } v)
        {
            json.WriteNumber(name, v);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    public static void Numbers(Utf8JsonWriter json, JsonEncodedText name, double[]? values)
    {
        if (values is null)
        {
            json.WriteNull(name);
            return;
        }
        json.WriteStartArray(name);
        foreach (var v in values)
        {
            if (double.IsFinite(v))
            {
                json.WriteNumberValue(v);
            }
            else
            {
                json.WriteNullValue();
            }
        }
        json.WriteEndArray();
    }

    public static void String(Utf8JsonWriter json, JsonEncodedText name, string? value)
    {
        if (value is null)
        {
            json.WriteNull(name);
        }
        else
        {
            json.WriteString(name, value);
        }
    }
}
