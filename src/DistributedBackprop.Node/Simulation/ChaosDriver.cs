using System.Diagnostics;
using System.Text.Json.Nodes;
using DistributedBackprop.Node.Chaos;

namespace DistributedBackprop.Node.Simulation;

/// <summary>
/// Injects the faults of <c>--chaos</c> as the coordinator's node reports its steps: kill (SIGKILL), stop (SIGSTOP,
/// SIGCONT after the duration), partition / slow / nan (commands on the node's standard input), leave (SIGTERM: the node
/// leaves the cluster) and join (<paramref name="join"/> starts a new node). It records what it injected, when, and how
/// long until the next step completed (the recovery time), for the summary.
/// </summary>
public sealed class ChaosDriver(IReadOnlyList<ChaosEvent> events, Func<int, NodeProcess?> current, Func<NodeProcess> join,
    TextWriter output, Func<int, NodeProcess?>? owner = null)
{
    private readonly object _gate = new();
    private readonly List<ChaosEvent> _pending = events.ToList();
    private readonly List<Injected> _injected = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int? _coordinator;

    private sealed record Injected(ChaosEvent Event, string Node, int Pid, long Step, double AtSeconds)
    {
        public double? RecoverySeconds { get; set; }
    }

    /// <summary>Listens to a node's step reports; a nan aimed at it is armed at once (it must precede its step).</summary>
    public void Attach(NodeProcess node)
    {
        node.StepReported += OnStep;
        lock (_gate)
        {
            foreach (var e in _pending.Where(e => e.Action == ChaosAction.Nan && e.Node == node.Index).ToList())
            {
                Fire(e, node, step: -1);
            }
        }
    }

    private void OnStep(NodeProcess node, long step)
    {
        lock (_gate)
        {
            _coordinator = node.Index;
            var now = _clock.Elapsed.TotalSeconds;
            foreach (var record in _injected.Where(r => r.RecoverySeconds is null && step > r.Step && r.Step >= 0))
            {
                record.RecoverySeconds = now - record.AtSeconds;
            }
            foreach (var e in _pending.ToList())
            {
                var due = e.Action == ChaosAction.Nan ? e.TargetsCoordinator : step >= e.Step;
                if (due && Target(e, node) is { } target)
                {
                    Fire(e, target, step);
                }
            }
        }
    }

    /// <summary>Whom a due event hits: a new node (join), a node by launch order, a range's owner, or the coordinator's node.</summary>
    private NodeProcess? Target(ChaosEvent e, NodeProcess coordinator) =>
        e.Action == ChaosAction.Join ? join()
        : e.Node is { } index ? current(index)
        : e.Owner is { } range ? owner?.Invoke(range)
        : coordinator;

    private void Fire(ChaosEvent e, NodeProcess target, long step)
    {
        _pending.Remove(e);
        _injected.Add(new Injected(e, target.Name, target.Pid, step, _clock.Elapsed.TotalSeconds));
        output.WriteLine($"chaos: {e.Text} -> {target.Name} (pid {target.Pid})" + (step >= 0 ? $" after step {step}" : ""));
        switch (e.Action)
        {
            case ChaosAction.Kill:
                target.KilledByChaos = true;
                target.Signal(NodeProcess.SIGKILL);
                break;
            case ChaosAction.Stop:
                target.Signal(NodeProcess.SIGSTOP);
                _ = Task.Delay(e.Duration).ContinueWith(_ => target.Signal(NodeProcess.SIGCONT), TaskScheduler.Default);
                break;
            case ChaosAction.Partition:
                target.SendCommand($"partition {(long)e.Duration.TotalMilliseconds}");
                break;
            case ChaosAction.Slow:
                target.SendCommand($"slow {(long)e.Duration.TotalMilliseconds}");
                break;
            case ChaosAction.Nan:
                target.SendCommand($"nan {e.Step}");
                break;
            case ChaosAction.Leave:
                target.LeftByChaos = true;
                target.Terminate();
                break;
            case ChaosAction.Join:
                break; // started by join()
        }
    }

    public JsonArray ToJson()
    {
        lock (_gate)
        {
            return new JsonArray(_injected.Select(r => (JsonNode?)new JsonObject
            {
                ["fault"] = r.Event.Text,
                ["node"] = r.Node,
                ["pid"] = r.Pid,
                ["after_step"] = r.Step,
                ["at_seconds"] = r.AtSeconds,
                ["recovery_seconds"] = r.RecoverySeconds,
            }).ToArray());
        }
    }

    /// <summary>One line per injected fault for the launcher's output.</summary>
    public IEnumerable<string> Report()
    {
        lock (_gate)
        {
            return _injected.Select(r => $"chaos: {r.Event.Text} on {r.Node}: " + (r.Event.Action == ChaosAction.Nan
                ? $"armed for step {r.Event.Step} (what the coordinator did is in faults.detected)"
                : r.RecoverySeconds is { } s ? $"next step completed {s:F2} s after the fault" : "the job ended before the next step")).ToList();
        }
    }
}
