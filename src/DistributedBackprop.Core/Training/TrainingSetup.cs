using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Optim;

namespace DistributedBackprop.Core.Training;

/// <summary>
/// Everything a run needs before its first step: the data (feature-normalised with statistics of the training split),
/// the network checked against the data, initial weights, the optimizer, the schedule and the slice plan.
/// The single-process trainer and every cluster node build the same setup from the same options.
/// </summary>
public sealed class TrainingSetup
{
    private TrainingSetup(TrainingOptions options, DataSplit data, FeatureNormaliser normaliser, Network network,
        SlicePlan plan, LearningRateSchedule schedule)
    {
        Options = options;
        Data = data;
        Normaliser = normaliser;
        Network = network;
        Plan = plan;
        Schedule = schedule;
    }

    public TrainingOptions Options { get; }
    /// <summary>Both splits, already normalised.</summary>
    public DataSplit Data { get; }
    public FeatureNormaliser Normaliser { get; }
    public Network Network { get; }
    public SlicePlan Plan { get; }
    public LearningRateSchedule Schedule { get; }
    public long TotalSteps => (long)Plan.StepsPerEpoch * Options.Epochs;

    /// <summary>Loads the data and normalises it with the training split's own statistics (one process).</summary>
    public static TrainingSetup Create(TrainingOptions options, DataSplit? preloaded = null)
    {
        options.Validate();
        var raw = preloaded ?? DataSource.Load(options.DataPath);
        CheckAgainstData(SpecOf(options), raw.Train, options.Layers);
        return Create(options, raw, FeatureNormaliser.FromStatistics(FeatureStatistics.Compute(raw.Train)));
    }

    /// <summary>
    /// Loads the data and checks everything a user can get wrong against it (layer widths, batch against the sample
    /// count and the slices) before any node or worker starts: one line, exit 2, nothing started.
    /// </summary>
    public static DataSplit LoadChecked(TrainingOptions options)
    {
        CheckMemory(options);
        var raw = DataSource.Load(options.DataPath);
        CheckAgainstData(SpecOf(options), raw.Train, options.Layers);
        _ = new SlicePlan(options.Seed, raw.Train.Count, options.Batch, options.Slices);
        return raw;
    }

    public static NetworkSpec SpecOf(TrainingOptions options) => new(NetworkSpec.ParseWidths(options.Layers),
        options.Activation, options.Loss, options.Dropout, options.BatchNorm);

    /// <summary>Builds the setup from raw data and a normaliser merged elsewhere (a cluster node).</summary>
    public static TrainingSetup Create(TrainingOptions options, DataSplit raw, FeatureNormaliser normaliser)
    {
        var spec = SpecOf(options);
        CheckAgainstData(spec, raw.Train, options.Layers);
        var network = CheckMemory(options);
        var data = new DataSplit(normaliser.Apply(raw.Train), normaliser.Apply(raw.Test));
        var plan = new SlicePlan(options.Seed, data.Train.Count, options.Batch, options.Slices);
        var schedule = new LearningRateSchedule(options.LearningRate, options.WarmupSteps, options.Decay,
            options.DecayEvery, options.DecayFactor, (long)plan.StepsPerEpoch * options.Epochs);
        return new TrainingSetup(options, data, normaliser, network, plan, schedule);
    }

    /// <summary>
    /// Builds the network and refuses, before anything large is allocated, a run whose arrays could not exist or that
    /// needs more memory than this process may use (<see cref="GCMemoryInfo.TotalAvailableMemoryBytes"/>: the
    /// machine's memory, a container's limit or DOTNET_GCHeapHardLimit). All in 64-bit arithmetic.
    /// </summary>
    public static Network CheckMemory(TrainingOptions options)
    {
        var network = new Network(SpecOf(options));
        long rows = options.Batch / Math.Max(1, options.Slices);
        long widest = network.MaxWidth;
        if (rows * widest > Array.MaxLength)
        {
            throw new DistbpInputException(
                "Batch", $"a slice of {rows:N0} rows of the widest layer ({widest:N0} units) is more than one array can hold; use more slices or a smaller batch.");
        }
        // A quarter more for the data, the runtime and the fragmentation of the large-object heap.
        var needed = TrainingBytes(network, options, rows) / 4 * 5;
        var available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (needed > available)
        {
            throw new DistbpInputException(
                "Layers", $"{options.Layers} with {network.ParameterCount:N0} parameters needs about {Gigabytes(needed)} to train, more than the {Gigabytes(available)} this process may use; use narrower layers or fewer slices.");
        }
        return network;
    }

    /// <summary>
    /// What one training process holds, in bytes: the weights and the versions published from them (the coordinator keeps
    /// a ring of <see cref="WeightsRetention.PublishedVersions"/>), the optimizer state, the result pool, and what each compute thread holds.
    /// </summary>
    private static long TrainingBytes(Network network, TrainingOptions options, long rows)
    {
        var threads = Math.Max(1, options.Threads);
        long weights = network.ParameterCount + network.BufferCount;
        var state = (long)Optimizer.Create(options.Optimizer, options.Momentum).StatePerParameter * network.ParameterCount;
        var pool = (long)network.ResultLength * BufferPool.ForSlices(0, options.Slices).Capacity;
        // Per thread: the prepared transposed weights, its spare result buffers (one per tree level) and one slice's
        // activations and gradients.
        var spares = (long)network.ResultLength * (GradientTree.RootLevel(options.Slices) + 1);
        var perThread = network.ParameterCount + spares + rows * (network.Spec.Widths.Sum(w => (long)w) + 2L * network.MaxWidth);
        return 4 * (weights * (1 + WeightsRetention.PublishedVersions) + state + pool + threads * perThread);
    }

    private static string Gigabytes(long bytes) =>
        (bytes / (double)(1L << 30)).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + " GiB";

    /// <summary>The state a checkpoint saved: weights, optimizer state, step and learning-rate scale.</summary>
    public TrainingState RestoreState(Checkpoints.ModelSnapshot snapshot)
    {
        var optimizer = Optimizer.Create(Options.Optimizer, Options.Momentum);
        if (snapshot.OptimizerState.Length != optimizer.StatePerParameter * Network.ParameterCount
            || snapshot.Weights.Parameters.Length != Network.ParameterCount
            || snapshot.Weights.Buffers.Length != Network.BufferCount)
        {
            throw new DistbpInputException("checkpoint: its network or optimizer state does not match these training options.");
        }
        if (snapshot.Header.Step > TotalSteps)
        {
            throw new DistbpInputException($"checkpoint: its step {snapshot.Header.Step} is past the run's {TotalSteps} steps.");
        }
        return new TrainingState(Network, snapshot.Weights, optimizer, Schedule, Options.Clip, snapshot.OptimizerState,
            snapshot.Header.Step, snapshot.Header.AppliedUpdates, snapshot.Header.LearningRateScale);
    }

    public TrainingState NewState()
    {
        var weights = Network.Initialize(Options.Seed);
        return new TrainingState(Network, weights, Optimizer.Create(Options.Optimizer, Options.Momentum), Schedule,
            Options.Clip);
    }

    public static void CheckAgainstData(NetworkSpec spec, Dataset train, string layersText)
    {
        if (spec.Widths[0] != train.FeatureCount)
        {
            throw new DistbpInputException(
                "Layers", $"the input width {spec.Widths[0]} in '{layersText}' does not match the data's {train.FeatureCount} features; start the list with {train.FeatureCount}.");
        }
        if (spec.Widths[^1] != train.ClassCount)
        {
            throw new DistbpInputException(
                "Layers", $"the output width {spec.Widths[^1]} in '{layersText}' does not match the data's {train.ClassCount} classes; end the list with {train.ClassCount}.");
        }
    }
}
