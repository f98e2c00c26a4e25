using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster;

/// <summary>
/// What a job is, as one node runs it: the training options (the same on every node: their hash is the run's id), this
/// node's copy of the data (data locality — samples never travel), where the outputs go and the coordinator's patience.
/// Immutable; what follows from them is computed once.
/// </summary>
public sealed class JobSpec
{
    private readonly Lazy<Network> _network;

    /// <param name="localWorkers">Workers this node runs: they share its <see cref="TrainingOptions.Threads"/>.</param>
    public JobSpec(TrainingOptions options, DataSplit rawData, JobOutputs outputs, int localWorkers)
    {
        Options = options;
        RawData = rawData;
        Outputs = outputs;
        ConfigHash = options.ConfigHash();
        // Workers on one node share its cores; their slices never depend on it.
        ThreadsPerWorker = Math.Max(1, options.Threads / Math.Max(1, localWorkers));
        _network = new Lazy<Network>(() => new Network(TrainingSetup.SpecOf(options)));
    }

    public TrainingOptions Options { get; }
    public DataSplit RawData { get; }
    public JobOutputs Outputs { get; }
    public CoordinatorTuning Tuning { get; init; } = new();

    /// <summary>The hash of the training options: the run's id, and what nodes must agree on.</summary>
    public string ConfigHash { get; }

    public int ThreadsPerWorker { get; }

    /// <summary>
    /// The most worker entities a job has: one shard each (the worker region's shard count), so that no two share one.
    /// </summary>
    public const int MaxWorkers = 100;

    /// <summary>
    /// Workers a node brings: --workers spread over the --min-nodes nodes the job starts with (rounded up). A node that
    /// joins later adds as many; one that leaves takes them away, down to --workers, which the job never goes below.
    /// </summary>
    public int WorkersPerNode => PerNode(Options.Workers, Outputs.MinNodes);

    /// <summary>⌈<paramref name="workers"/> / <paramref name="minNodes"/>⌉, at least 1: what each node runs.</summary>
    public static int PerNode(int workers, int minNodes) => Math.Max(1, (workers + minNodes - 1) / Math.Max(1, minNodes));

    /// <summary>The network of the options' shape (for sizes; its weights are not used).</summary>
    public Core.Model.Network Network => _network.Value;

    /// <summary>The length of a slice result (gradients, loss and correct count).</summary>
    public int ResultLength => _network.Value.ResultLength;

    /// <summary>
    /// The most bytes one message of this job may take on the wire: its largest tensor (a result vector, a weights
    /// version, a range owner's parameters with its optimizer state — at most two values per parameter, Adam's — or the
    /// data statistics) with room for the framing. Frames and chunked transfers past it are refused.
    /// </summary>
    public int LargestMessageBytes => Transport.DataFrames.FrameLimitFor(Math.Max(Math.Max(_network.Value.ResultLength,
        3L * _network.Value.ParameterCount + _network.Value.BufferCount), 4L * _network.Value.InputSize));
}

/// <summary>Where the coordinator writes its outputs, when it runs on this node.</summary>
public sealed record JobOutputs(string? ModelPath, string? SummaryPath, int MinNodes, int Nodes)
{
    /// <summary>The run folder (config.json, metrics.jsonl, events.jsonl, summary.json, model.distbp); null: none.</summary>
    public string? RunDir { get; init; }

    /// <summary>The command that started the job (train, simulate or node), for the run folder's config.json.</summary>
    public string Command { get; init; } = "node";
}

/// <summary>
/// The coordinator's patience, and its workers'. Defaults suit training; tests shorten them.
/// </summary>
public sealed record CoordinatorTuning
{
    /// <summary>Re-send missing work (statistics, evaluation chunks) after this long without it.</summary>
    public TimeSpan ResendAfter { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>A step slower than this factor × the median step time gets speculative copies.</summary>
    public double StragglerFactor { get; init; } = 3;
    /// <summary>…but never sooner than this after the step started.</summary>
    public TimeSpan MinStragglerDelay { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>
    /// Once half of a step's slices are in, the rest get copies after StragglerFactor × the time that took, but not
    /// sooner than this: a node slower than the others by less than the straggler deadline would otherwise set the pace
    /// of every step (one slowed by 500 ms a reply made 10 ms steps take 500 ms).
    /// </summary>
    public TimeSpan MinTailDelay { get; init; } = TimeSpan.FromMilliseconds(100);
    /// <summary>With no progress for this long (too few workers), checkpoint and exit 1 with the resume command.</summary>
    public TimeSpan WorkerWait { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>
    /// A worker's job waits this long for its weights, then fails. The cache pulls a missing version after a second; one
    /// that has not come by now belonged to a coordinator that died publishing it, and waiting on would keep the job in
    /// front of everything a new coordinator sends.
    /// </summary>
    public TimeSpan WeightsWait { get; init; } = TimeSpan.FromSeconds(10);
}

