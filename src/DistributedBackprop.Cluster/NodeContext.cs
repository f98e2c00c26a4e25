using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster;

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
    /// <summary>With no progress for this long (too few workers), checkpoint and exit 1 with the resume command.</summary>
    public TimeSpan WorkerWait { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>
    /// A worker's job waits this long for its weights, then fails. The cache pulls a missing version after a second; one
    /// that has not come by now belonged to a coordinator that died publishing it, and waiting on would keep the job in
    /// front of everything a new coordinator sends.
    /// </summary>
    public TimeSpan WeightsWait { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// What every actor on one node shares: the training options, this node's copy of the data (data locality — samples
/// never travel), the result buffers' pool and the job's outcome. The setup (the data normalised with the coordinator's
/// normaliser) is not here: the node's weights cache builds it and hands it out with the weights.
/// </summary>
public sealed class NodeContext
{
    private readonly object _gate = new();

    public NodeContext(TrainingOptions options, DataSplit rawData, JobOutputs outputs, int localWorkers,
        ITrainingObserver? observer = null)
    {
        Options = options;
        RawData = rawData;
        Outputs = outputs;
        Observer = observer;
        ConfigHash = options.ConfigHash();
        // Workers on one node share its cores; their slices never depend on it.
        ThreadsPerWorker = Math.Max(1, options.Threads / Math.Max(1, localWorkers));
        _largestMessageBytes = new Lazy<int>(() => LargestMessageOf(options));
    }

    public TrainingOptions Options { get; }
    public DataSplit RawData { get; }
    public JobOutputs Outputs { get; }
    public ITrainingObserver? Observer { get; }
    public CoordinatorTuning Tuning { get; init; } = new();
    /// <summary>Sees the workers' sums before they are sent (chaos testing); none in production.</summary>
    public Workers.IComputedSlicesHook? ComputedSlicesHook { get; init; }
    public string ConfigHash { get; }
    public int ThreadsPerWorker { get; }
    public TaskCompletionSource<JobOutcome> Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private BufferPool? _pool;

    /// <summary>
    /// The most bytes one message of this job may take on the wire: its largest tensor (a result vector, a weights
    /// version, or the data statistics) with room for the framing. Frames and chunked transfers past it are refused.
    /// </summary>
    public int LargestMessageBytes => _largestMessageBytes.Value;

    private readonly Lazy<int> _largestMessageBytes;

    private static int LargestMessageOf(TrainingOptions options)
    {
        var network = new Core.Model.Network(TrainingSetup.SpecOf(options));
        return Transport.DataFrames.FrameLimitFor(Math.Max(Math.Max(network.ResultLength,
            (long)network.ParameterCount + network.BufferCount), 4L * network.InputSize));
    }

    /// <summary>Result buffers shared by the workers and the coordinator of this process (no per-step allocation).</summary>
    public BufferPool Pool
    {
        get
        {
            lock (_gate)
            {
                return _pool ??= BufferPool.ForSlices(
                    new Core.Model.Network(TrainingSetup.SpecOf(Options)).ResultLength, Options.Slices);
            }
        }
    }
}
