using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Optim;

namespace DistributedBackprop.Core.Training;

/// <summary>
/// One throwaway step of a configuration, run before the first real one: the JIT compiles the step's kernels, layers,
/// tree and optimizer (every method is compiled fully optimised at its first call), which otherwise made the first
/// training step of the benchmark work take ~85 ms instead of ~2. A worker runs it on its compute lane as it starts,
/// while the cluster is still forming and the normaliser is computed. Nothing it computes is kept.
/// </summary>
public static class StepWarmUp
{
    public static void Run(TrainingOptions options, Dataset rawTrain, int threads)
    {
        var network = new Network(TrainingSetup.SpecOf(options));
        var sliceSize = options.Batch / options.Slices;
        if (sliceSize == 0 || rawTrain.Count == 0 || rawTrain.FeatureCount != network.InputSize)
        {
            return;
        }
        var pool = new BufferPool(network.ResultLength);
        using var runner = new SliceRunner(network, sliceSize, options.Slices, threads, pool);
        var weights = network.Initialize(options.Seed);
        var batch = Enumerable.Range(0, sliceSize * options.Slices).Select(i => i % rawTrain.Count).ToArray();
        var reducer = new GradientTreeReducer(options.Slices, pool);
        foreach (var (node, sum) in runner.Run(weights, rawTrain, batch, options.Seed, 0, 0, options.Slices))
        {
            reducer.Add(node, sum);
        }
        var schedule = new LearningRateSchedule(options.LearningRate, options.WarmupSteps, options.Decay, options.DecayEvery,
            options.DecayFactor, 1);
        var state = new TrainingState(network, weights, Optimizer.Create(options.Optimizer, options.Momentum), schedule,
            options.Clip);
        state.Apply(reducer.Root, options.Batch, options.Slices);
    }
}
