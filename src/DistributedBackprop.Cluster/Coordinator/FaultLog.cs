using System.Diagnostics;
using System.Text.Json.Nodes;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>One fault the coordinator noticed: what, when (step), who, what it did about it, and how long until the
/// first step completed after it. <see cref="Worker"/> and <see cref="Node"/> name the subject where there is one.</summary>
public sealed record FaultRecord(string Kind, long Step, string Subject, string Handling, double DetectedAtSeconds,
    DateTime DetectedUtc, string? Worker, string? Node)
{
    public double? RecoverySeconds { get; set; }
}

/// <summary>The faults of a run, for the summary's <c>faults</c> object, the run folder's events and the log.</summary>
public sealed class FaultLog
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<FaultRecord> _records = [];
    private readonly List<FaultRecord> _open = [];

    public IReadOnlyList<FaultRecord> Records => _records;

    /// <summary>Faults not yet followed by a completed step.</summary>
    public IReadOnlyList<FaultRecord> Open => _open;

    public FaultRecord Add(string kind, long step, string subject, string handling, string? worker = null,
        string? node = null)
    {
        var record = new FaultRecord(kind, step, subject, handling, _clock.Elapsed.TotalSeconds, DateTime.UtcNow, worker,
            node);
        _records.Add(record);
        _open.Add(record);
        Telemetry.TrainingMetrics.FaultsHandled.Add(1);
        return record;
    }

    /// <summary>A step completed: every fault still open has recovered now. Returns those faults (usually none).</summary>
    public IReadOnlyList<FaultRecord> StepCompleted()
    {
        if (_open.Count == 0)
        {
            return [];
        }
        foreach (var record in _open)
        {
            record.RecoverySeconds = _clock.Elapsed.TotalSeconds - record.DetectedAtSeconds;
        }
        var recovered = _open.ToArray();
        _open.Clear();
        return recovered;
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
