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
        var data = new DataSplit(normaliser.Apply(raw.Train), normaliser.Apply(raw.Test));
        var network = new Network(spec);
        var plan = new SlicePlan(options.Seed, data.Train.Count, options.Batch, options.Slices);
        var schedule = new LearningRateSchedule(options.LearningRate, options.WarmupSteps, options.Decay,
            options.DecayEvery, options.DecayFactor, (long)plan.StepsPerEpoch * options.Epochs);
        return new TrainingSetup(options, data, normaliser, network, plan, schedule);
    }

    /// <summary>The state a checkpoint saved: weights, optimizer state, step and learning-rate scale.</summary>
    public TrainingState RestoreState(Checkpoints.ModelSnapshot snapshot)
    {
        var optimizer = Optimizer.Create(Options.Optimizer, Options.Momentum);
        if (snapshot.OptimizerState.Length != optimizer.StatePerParameter * Network.ParameterCount
            || snapshot.Weights.Parameters.Length != Network.ParameterCount)
        {
            throw new DistbpInputException("checkpoint: its network or optimizer state does not match these training options.");
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
                $"--layers: the input width {spec.Widths[0]} in '{layersText}' does not match the data's {train.FeatureCount} features; start the list with {train.FeatureCount}.");
        }
        if (spec.Widths[^1] != train.ClassCount)
        {
            throw new DistbpInputException(
                $"--layers: the output width {spec.Widths[^1]} in '{layersText}' does not match the data's {train.ClassCount} classes; end the list with {train.ClassCount}.");
        }
    }
}
