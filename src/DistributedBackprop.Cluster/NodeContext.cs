using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster;

/// <summary>How a job ended, as the node that hosted the coordinator saw it (or as it was told).</summary>
public sealed record JobOutcome(int ExitCode, string Message, System.Text.Json.Nodes.JsonObject? Summary = null,
    TrainingResult? Result = null);

/// <summary>Where the coordinator writes its outputs, when it runs on this node.</summary>
public sealed record JobOutputs(string? ModelPath, string? SummaryPath, int MinNodes, int Nodes);

/// <summary>
/// What every actor on one node shares: the training options, this node's copy of the data (data locality — samples
/// never travel), the setup once the coordinator's normaliser arrives, the result buffers' pool and the job's outcome.
/// </summary>
public sealed class NodeContext
{
    private readonly object _gate = new();
    private TrainingSetup? _setup;

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
    }

    public TrainingOptions Options { get; }
    public DataSplit RawData { get; }
    public JobOutputs Outputs { get; }
    public ITrainingObserver? Observer { get; }
    public string ConfigHash { get; }
    public int ThreadsPerWorker { get; }
    public TaskCompletionSource<JobOutcome> Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private BufferPool? _pool;

    /// <summary>The setup, once the normaliser is known; null before.</summary>
    public TrainingSetup? Setup
    {
        get
        {
            lock (_gate)
            {
                return _setup;
            }
        }
    }

    /// <summary>Result buffers shared by the workers and the coordinator of this process (no per-step allocation).</summary>
    public BufferPool Pool
    {
        get
        {
            lock (_gate)
            {
                return _pool ??= new BufferPool(
                    new Core.Model.Network(TrainingSetup.SpecOf(Options)).ResultLength);
            }
        }
    }

    /// <summary>Normalises this node's data with the coordinator's normaliser (once; later calls return the same).</summary>
    public TrainingSetup UseNormaliser(FeatureNormaliser normaliser)
    {
        lock (_gate)
        {
            return _setup ??= TrainingSetup.Create(Options, RawData, normaliser);
        }
    }
}
