using System.Diagnostics;
using System.Text.Json.Nodes;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>One fault the coordinator noticed: what, when (step), who, what it did about it, and how long until the
/// first step completed after it.</summary>
public sealed record FaultRecord(string Kind, long Step, string Subject, string Handling, double DetectedAtSeconds)
{
    public double? RecoverySeconds { get; set; }
}

/// <summary>The faults of a run, for the summary's <c>faults</c> object and the log.</summary>
public sealed class FaultLog
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<FaultRecord> _records = [];
    private readonly List<FaultRecord> _open = [];

    public IReadOnlyList<FaultRecord> Records => _records;

    public FaultRecord Add(string kind, long step, string subject, string handling)
    {
        var record = new FaultRecord(kind, step, subject, handling, _clock.Elapsed.TotalSeconds);
        _records.Add(record);
        _open.Add(record);
        Telemetry.TrainingMetrics.FaultsHandled.Add(1);
        return record;
    }

    /// <summary>A step completed: every fault still open has recovered now.</summary>
    public void StepCompleted()
    {
        foreach (var record in _open)
        {
            record.RecoverySeconds = _clock.Elapsed.TotalSeconds - record.DetectedAtSeconds;
        }
        _open.Clear();
    }

    public JsonObject ToJson() => new()
    {
        ["injected"] = new JsonArray(),
        ["detected"] = new JsonArray(_records.Select(r => (JsonNode?)new JsonObject
        {
            ["kind"] = r.Kind,
            ["step"] = r.Step,
            ["subject"] = r.Subject,
            ["handling"] = r.Handling,
            ["recovery_seconds"] = r.RecoverySeconds,
        }).ToArray()),
        ["count"] = _records.Count,
    };
}
