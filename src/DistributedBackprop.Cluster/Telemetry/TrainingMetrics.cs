using System.Diagnostics.Metrics;

namespace DistributedBackprop.Cluster.Telemetry;

/// <summary>
/// The coordinator's and workers' instruments on one <see cref="Meter"/> (System.Diagnostics.Metrics), so any listener
/// (the node's /metrics page, dotnet-counters, OpenTelemetry) can read them. Names follow Prometheus conventions.
/// </summary>
public static class TrainingMetrics
{
    public const string MeterName = "DistributedBackprop";

    private static readonly Meter Meter = new(MeterName, "1.0");

    private static double _samplesPerSecond;
    private static double _loss = double.NaN;
    private static double _gradientNorm = double.NaN;
    private static int _workersAlive;
    private static int _localWorkers;

    public static readonly Histogram<double> StepSeconds = Meter.CreateHistogram<double>(
        "distbp_step_seconds", "s", "wall time of one training step at the coordinator");

    public static readonly Counter<long> Steps = Meter.CreateCounter<long>(
        "distbp_steps_total", description: "steps applied (or skipped by the health monitor)");

    public static readonly Counter<long> ClippedSteps = Meter.CreateCounter<long>(
        "distbp_clipped_steps_total", description: "steps whose global gradient norm was clipped");

    public static readonly Counter<long> BytesSent = Meter.CreateCounter<long>(
        "distbp_bytes_sent_total", "By", "tensor bytes the coordinator sent or received over the network");

    public static readonly Counter<long> FaultsHandled = Meter.CreateCounter<long>(
        "distbp_faults_handled_total", description: "worker faults the coordinator detected and handled");

    public static readonly Counter<long> PeerRefusals = Meter.CreateCounter<long>(
        "distbp_peer_refusals_total", description: "connections, frames and messages refused from peers, by reason");

    static TrainingMetrics()
    {
        Meter.CreateObservableGauge("distbp_samples_per_second", () => Volatile.Read(ref _samplesPerSecond),
            description: "training throughput since the run started");
        Meter.CreateObservableGauge("distbp_loss", () => Volatile.Read(ref _loss),
            description: "mean training loss of the last step");
        Meter.CreateObservableGauge("distbp_gradient_norm", () => Volatile.Read(ref _gradientNorm),
            description: "global L2 norm of the last step's averaged gradient (before clipping)");
        Meter.CreateObservableGauge("distbp_workers_alive", () => Volatile.Read(ref _workersAlive),
            description: "worker entities the coordinator is using");
        Meter.CreateObservableGauge("distbp_local_workers", () => Volatile.Read(ref _localWorkers),
            description: "worker entities hosted on this node");
    }

    /// <summary>Creates the instruments (the static constructor) so a listener sees them before the first step.</summary>
    public static void EnsureCreated()
    {
    }

    /// <summary>Called by the coordinator once per applied (or skipped) step.</summary>
    public static void RecordStep(double wallSeconds, double samplesPerSecond, double loss, double gradientNorm, bool clipped)
    {
        StepSeconds.Record(wallSeconds);
        Steps.Add(1);
        if (clipped)
        {
            ClippedSteps.Add(1);
        }
        Volatile.Write(ref _samplesPerSecond, samplesPerSecond);
        Volatile.Write(ref _loss, loss);
        Volatile.Write(ref _gradientNorm, gradientNorm);
    }

    /// <summary>Counts one refusal of a peer's connection, frame or message under <paramref name="reason"/>.</summary>
    public static void PeerRefused(string reason) => PeerRefusals.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>Counts one data-channel refusal (reason label: the refusal's name in kebab case).</summary>
    public static void PeerRefused(Transport.PeerRefusal reason) => PeerRefused(KebabCase(reason.ToString()));

    private static string KebabCase(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) ? (i > 0 ? "-" : "") + char.ToLowerInvariant(c) : c.ToString()));

    public static void SetWorkersAlive(int count) => Volatile.Write(ref _workersAlive, count);

    public static void LocalWorkerStarted() => Interlocked.Increment(ref _localWorkers);

    public static void LocalWorkerStopped() => Interlocked.Decrement(ref _localWorkers);
}
