using System.Text.Json;
using System.Text.Json.Nodes;
using DistributedBackprop.Core.Kernels;

namespace DistributedBackprop.Core.Training;

/// <summary>The --summary-json object (README, Outputs, names its keys).</summary>
public static class TrainingSummary
{
    /// <summary>The summary object; <paramref name="extra"/> adds run-specific keys (cluster timings, bytes).</summary>
    public static JsonObject Build(TrainingSetup setup, TrainingResult result, int workers, int nodes,
        JsonObject? extra = null)
    {
        var o = setup.Options;
        var h = result.Health;
        var summary = new JsonObject
        {
            ["samples_per_second"] = Known(result.SamplesPerSecond),
            ["train_seconds"] = result.TrainSeconds,
            ["steps"] = result.Steps,
            ["steps_run"] = result.StepsRun,
            ["epochs"] = o.Epochs,
            ["global_batch"] = o.Batch,
            ["slices"] = o.Slices,
            ["workers"] = workers,
            ["nodes"] = nodes,
            ["threads"] = o.Threads,
            ["aggregation"] = o.Aggregation,
            ["test_accuracy"] = Known(result.Test.Accuracy),
            ["test_loss"] = Known(result.Test.Loss),
            ["final_train_loss"] = Known(result.FinalTrainLoss),
            ["weights_sha256"] = result.WeightsSha256,
            ["config_hash"] = o.ConfigHash(),
            ["kernel"] = KernelInfo.Name,
            ["data"] = new JsonObject
            {
                ["source"] = o.DataPath ?? "embedded:fashion-mnist-sample",
                ["train_samples"] = setup.Data.Train.Count,
                ["test_samples"] = setup.Data.Test.Count,
                ["features"] = setup.Data.Train.FeatureCount,
                ["classes"] = setup.Data.Train.ClassCount,
            },
            ["health"] = new JsonObject
            {
                ["exploding_steps"] = h.ExplodingSteps,
                ["nonfinite_steps"] = h.NonFiniteSteps,
                ["skipped_steps"] = h.SkippedSteps,
                ["clipped_steps"] = h.ClippedSteps,
                ["learning_rate_scale"] = h.LearningRateScale,
                ["vanishing_warnings"] = h.VanishingWarnings,
                ["dead_unit_warnings"] = h.DeadUnitWarnings,
                ["dead_unit_fraction"] = ToArray(h.DeadUnitFractions),
                ["layer_gradient_norms"] = ToArray(h.MeanLayerGradientNorms),
                ["warnings"] = new JsonArray(h.Warnings.Select(w => (JsonNode?)JsonValue.Create(w)).ToArray()),
            },
            ["faults"] = new JsonObject
            {
                ["injected"] = new JsonArray(),
                ["detected"] = new JsonArray(),
            },
        };
        foreach (var (key, value) in extra ?? [])
        {
            summary[key] = value?.DeepClone();
        }
        return summary;
    }

    public static string ToJson(JsonObject summary) =>
        summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>JSON has no NaN: a value not known (no step run, no evaluation yet, e.g. a run resumed at its end) is null.</summary>
    private static JsonNode? Known(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    private static JsonArray ToArray(double[] values) =>
        new(values.Select(v => (JsonNode?)JsonValue.Create(double.IsFinite(v) ? v : 0)).ToArray());
}
