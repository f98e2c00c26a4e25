using System.Text.Json.Nodes;
using Akka.Actor;
using DistributedBackprop.Core.Health;
using DistributedBackprop.Core.Runs;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// What the coordinator tells the run folder: a line per step and per evaluation in metrics.jsonl, faults, health
/// warnings, membership, cluster snapshots and checkpoints in events.jsonl. Every call only builds a small record and
/// queues it (<see cref="RunLog"/> writes in the background). Without a run folder every call does nothing.
/// </summary>
public sealed class RunRecorder : IDisposable
{
    /// <summary>Hidden switch, only for measuring what the per-step lines cost: DISTBP_METRICS=off writes none.</summary>
    public const string MetricsVariable = "DISTBP_METRICS";

    private readonly RunLog? _log;
    private readonly bool _stepLines;
    private readonly Dictionary<Address, string[]> _roles = [];
    private string _lastSnapshot = "";

    private RunRecorder(RunLog? log)
    {
        _log = log;
        _stepLines = log is not null && Environment.GetEnvironmentVariable(MetricsVariable) != "off";
    }

    /// <summary>Records nothing: no run folder.</summary>
    public static RunRecorder None { get; } = new(null);

    /// <summary>
    /// Opens the run folder (creating it and its config.json if this job is the first to use it; a coordinator that
    /// moved, or a resumed run, appends). Throws IOException or UnauthorizedAccessException when it cannot be written.
    /// </summary>
    public static RunRecorder Open(JobSpec spec)
    {
        if (spec.Outputs.RunDir is not { } dir)
        {
            return None;
        }
        var files = new RunFiles(dir);
        var now = DateTime.UtcNow;
        files.TryCreateConfig(RunFiles.Describe(spec.Options, spec.Outputs.Command, spec.Options.Workers, spec.Outputs.Nodes, now));
        return new RunRecorder(RunLog.Open(files, files.StartedUtc() ?? now));
    }

    public RunFiles? Files => _log?.Files;

    public void Step(StepReport report, int epoch, TrainingState state, int batch, double wallSeconds,
        double computeSeconds, double coordinatorSeconds, int workersAlive, IReadOnlyList<string?> sliceWorkers,
        IReadOnlyCollection<string> stragglers)
    {
        if (!_stepLines)
        {
            return;
        }
        var clip = state.ClipNorm > 0 ? state.ClipNorm : (double?)null;
        _log!.Write(new StepLine
        {
            Step = report.Step,
            Epoch = epoch,
            ElapsedSeconds = _log.ElapsedSeconds(DateTime.UtcNow),
            Loss = report.Loss,
            Accuracy = report.Accuracy,
            LearningRate = report.LearningRate,
            GradientNorm = report.GradientNorm,
            ClippedGradientNorm = report.Skipped ? null : report.Clipped ? clip : report.GradientNorm,
            Clipped = report.Clipped,
            Clip = clip,
            LayerGradientNorms = state.LayerGradientNorms.ToArray(),
            LayerNames = state.LayerNames,
            DeadFractions = report.Skipped || !state.Health.HasReluLayers ? null : state.Health.StepDeadFractions.ToArray(),
            SamplesPerSecond = batch / Math.Max(wallSeconds, 1e-9),
            ComputeMs = computeSeconds * 1000,
            CommunicationMs = Math.Max(0, wallSeconds - computeSeconds - coordinatorSeconds) * 1000,
            CoordinatorMs = coordinatorSeconds * 1000,
            StepMs = wallSeconds * 1000,
            WorkersAlive = workersAlive,
            SliceWorkers = sliceWorkers.ToArray(),
            Stragglers = stragglers.Count == 0 ? [] : stragglers.ToArray(),
            Skipped = report.Skipped,
        });
    }

    /// <summary>The held-out split after <paramref name="step"/>, the last step of <paramref name="epoch"/>.</summary>
    public void Evaluation(long step, int epoch, Evaluation test) =>
        _log?.Write(new EvalLine(step, epoch, _log.ElapsedSeconds(DateTime.UtcNow), test.Loss, test.Accuracy));

    public void Health(HealthWarning warning, long step) =>
        Event("health", warning.Type, warning.Message, step, fix: warning.Fix);

    /// <summary>A fault, written once its recovery time is known (or at the end of the run, if it never recovered).</summary>
    public void Fault(FaultRecord fault)
    {
        if (_log is null)
        {
            return;
        }
        _log.Write(new EventLine
        {
            Time = fault.DetectedUtc,
            ElapsedSeconds = _log.ElapsedSeconds(fault.DetectedUtc),
            Step = fault.Step,
            Kind = "fault",
            Type = EventType(fault.Kind),
            Message = $"{fault.Kind} at step {fault.Step} ({fault.Subject}): {fault.Handling}.",
            Worker = fault.Worker,
            Node = fault.Node,
            RecoverySeconds = fault.RecoverySeconds,
        });
    }

    /// <summary>The contract's event types for the coordinator's fault kinds.</summary>
    private static string EventType(string faultKind) => faultKind switch
    {
        "node-unreachable" or "node-removed" => "worker-lost",
        "non-finite-result" => "nan-gradient",
        "resumed-from-checkpoint" => "coordinator-resumed",
        _ => faultKind,
    };

    public void WorkerExcluded(string worker, long step, string reason) =>
        Event("fault", "worker-excluded", $"{worker} excluded at step {step}: {reason}.", step, worker: worker);

    public void MemberUp(Akka.Cluster.Member member, long step)
    {
        _roles[member.Address] = member.Roles.Order(StringComparer.Ordinal).ToArray();
        Event("membership", "node-up", $"node {member.Address} is up (roles {string.Join(", ", _roles[member.Address])}).",
            step, node: member.Address.ToString());
    }

    public void MemberRemoved(Address node, long step)
    {
        _roles.Remove(node);
        Event("membership", "node-left", $"node {node} left the cluster.", step, node: node.ToString());
    }

    public void Reachability(Address node, bool reachable, long step) =>
        Event("membership", reachable ? "node-reachable" : "node-unreachable",
            $"node {node} is {(reachable ? "reachable again" : "unreachable")}.", step, node: node.ToString());

    /// <summary>
    /// A "cluster" line with every node, its roles and status, whether it hosts the coordinator and its live workers —
    /// written only when that picture changed.
    /// </summary>
    public void Snapshot(long step, IEnumerable<Address> members, IReadOnlySet<Address> unreachable,
        IReadOnlyDictionary<string, string> placement, IReadOnlyList<string> aliveWorkers, Address coordinator)
    {
        if (_log is null)
        {
            return;
        }
        var nodes = new JsonArray();
        var workerCount = 0;
        foreach (var node in members.OrderBy(m => m.ToString(), StringComparer.Ordinal))
        {
            var workers = placement.Where(p => p.Value == node.ToString() && aliveWorkers.Contains(p.Key))
                .Select(p => p.Key).ToList();
            workerCount += workers.Count;
            nodes.Add(new JsonObject
            {
                ["address"] = $"{node.Host}:{node.Port}",
                ["roles"] = new JsonArray(_roles.GetValueOrDefault(node, []).Select(r => (JsonNode?)r).ToArray()),
                ["status"] = unreachable.Contains(node) ? "unreachable" : "up",
                ["coordinator"] = node == coordinator,
                ["workers"] = new JsonArray(workers.Select(w => (JsonNode?)w).ToArray()),
            });
        }
        var picture = nodes.ToJsonString();
        if (picture == _lastSnapshot)
        {
            return;
        }
        _lastSnapshot = picture;
        var nodeCount = nodes.Count;
        Event("cluster", "membership", $"{nodeCount} node{(nodeCount == 1 ? "" : "s")}, {workerCount} worker{(workerCount == 1 ? "" : "s")}",
            step, extra: new JsonObject { ["nodes"] = nodes });
    }

    public void Checkpoint(string path, long step) =>
        Event("checkpoint", "checkpoint-written", $"checkpoint of step {step} written to {path}.", step);

    public void Info(string type, string message, long step) => Event("info", type, message, step);

    /// <summary>An event line; <paramref name="step"/> is the step the coordinator is at (the next to run).</summary>
    private void Event(string kind, string type, string message, long step, string? fix = null, string? node = null,
        string? worker = null, JsonObject? extra = null)
    {
        if (_log is null)
        {
            return;
        }
        var now = DateTime.UtcNow;
        _log.Write(new EventLine
        {
            Time = now,
            ElapsedSeconds = _log.ElapsedSeconds(now),
            Step = step,
            Kind = kind,
            Type = type,
            Message = message,
            Fix = fix,
            Node = node,
            Worker = worker,
            Extra = extra,
        });
    }

    /// <summary>Writes what is queued and closes the files; later calls record nothing.</summary>
    /// <summary>Faults that never saw a completed step go out without a recovery time; then every line is written.</summary>
    public void Close(FaultLog faults)
    {
        foreach (var fault in faults.Open)
        {
            Fault(fault);
        }
        Dispose();
    }

    public void Dispose() => _log?.Dispose();
}
