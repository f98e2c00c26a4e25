using System.Text.Json.Nodes;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// Where a run's time goes, step by step: wall time, compute (the slowest worker's), the coordinator's own work and,
/// by difference, communication; tensor bytes over the network, in all and per node; and the straggler deadline, from
/// the median of recent fault-free steps. Feeds the summary's <c>step_seconds</c>, <c>bytes_per_step</c>,
/// <c>bytes_per_node_per_step</c> and <c>busiest_node_bytes_per_step</c>.
/// </summary>
public sealed class StepTimings(TimeProvider? clock = null)
{
    /// <summary>How many recent fault-free steps the straggler deadline's median is taken over.</summary>
    public const int RecentSteps = 50;

    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private long _stepStart;
    private readonly List<double> _recentSteps = [];
    private double _stepCompute;
    private readonly SortedDictionary<string, long> _nodeBytes = new(StringComparer.Ordinal);

    public double TrainSeconds { get; private set; }
    public double ComputeSeconds { get; private set; }
    public double CoordinatorSeconds { get; private set; }
    public long BytesSent { get; private set; }
    public long StepsRun { get; private set; }

    /// <summary>How long the current step has run.</summary>
    public TimeSpan SinceStepStart => _clock.GetElapsedTime(_stepStart);

    /// <summary>The slowest worker's compute time in the current step.</summary>
    public double StepCompute => _stepCompute;

    public void BeginStep()
    {
        _stepStart = _clock.GetTimestamp();
        _stepCompute = 0;
    }

    /// <summary>A worker's result came with its compute time.</summary>
    public void Computed(double seconds) => _stepCompute = Math.Max(_stepCompute, seconds);

    /// <summary>
    /// Tensor bytes that crossed the network between the coordinator's node and <paramref name="node"/>, either way: both
    /// nodes moved them. With the coordinator aggregating, every tensor byte passes its node, which moves them all.
    /// </summary>
    public void Moved(string coordinatorNode, string node, long bytes)
    {
        BytesSent += bytes;
        _nodeBytes[node] = _nodeBytes.GetValueOrDefault(node) + bytes;
        _nodeBytes[coordinatorNode] = _nodeBytes.GetValueOrDefault(coordinatorNode) + bytes;
    }

    /// <summary>
    /// The step is applied: returns its wall time. Only fault-free steps set the straggler deadline: a step that waited
    /// for a straggler (or a lost worker) would raise the median, the next deadline with it, and a persistent straggler
    /// would slow every step more and more.
    /// </summary>
    public double EndStep(double applySeconds, bool faultFree)
    {
        var wall = _clock.GetElapsedTime(_stepStart).TotalSeconds;
        TrainSeconds += wall;
        ComputeSeconds += _stepCompute;
        CoordinatorSeconds += applySeconds;
        StepsRun++;
        if (faultFree)
        {
            _recentSteps.Add(wall);
            if (_recentSteps.Count > RecentSteps)
            {
                _recentSteps.RemoveAt(0);
            }
        }
        return wall;
    }

    /// <summary>Samples per second over the steps run so far.</summary>
    public double SamplesPerSecond(int batch) => StepsRun * batch / TrainSeconds;

    /// <summary>
    /// How long a step waits before its stragglers' slices get speculative copies: <see cref="CoordinatorTuning.StragglerFactor"/>
    /// × the median recent step, never sooner than the tuning's minimum; before any step, the re-send delay.
    /// </summary>
    public TimeSpan StragglerDelay(CoordinatorTuning tuning)
    {
        if (_recentSteps.Count == 0)
        {
            return tuning.ResendAfter;
        }
        var sorted = _recentSteps.Order().ToList();
        var median = sorted[sorted.Count / 2];
        var delay = TimeSpan.FromSeconds(tuning.StragglerFactor * median);
        return delay < tuning.MinStragglerDelay ? tuning.MinStragglerDelay : delay;
    }

    /// <summary>The summary's <c>step_seconds</c>: mean seconds per step, in parts.</summary>
    public JsonObject ToJson()
    {
        var steps = Math.Max(1, StepsRun);
        return new JsonObject
        {
            ["total"] = TrainSeconds / steps,
            ["compute"] = ComputeSeconds / steps,
            ["coordinator"] = CoordinatorSeconds / steps,
            ["communication"] = Math.Max(0, TrainSeconds - ComputeSeconds - CoordinatorSeconds) / steps,
        };
    }

    /// <summary>The summary's <c>bytes_per_step</c>: tensor bytes over the network per step, all nodes together.</summary>
    public double BytesPerStep => BytesSent / (double)Math.Max(1, StepsRun);

    /// <summary>The summary's <c>bytes_per_node_per_step</c>: tensor bytes each node sent plus received, per step.</summary>
    public JsonObject BytesPerNodeToJson() =>
        new(_nodeBytes.Select(n => KeyValuePair.Create(n.Key, (JsonNode?)(n.Value / (double)Math.Max(1, StepsRun)))));

    /// <summary>The summary's <c>busiest_node_bytes_per_step</c>: the most any one node moved (0 in one process).</summary>
    public double BusiestNodeBytesPerStep => _nodeBytes.Count == 0 ? 0 : _nodeBytes.Values.Max() / (double)Math.Max(1, StepsRun);
}
