using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Optim;

namespace DistributedBackprop.Core.Training;

/// <summary>
/// One throwaway step of a configuration, run before the first real one: the JIT compiles the step's kernels, layers,
/// tree and optimizer (every method is compiled fully optimised at its first call), and the runner's threads, workspaces
/// and result buffers exist. Without it the first training step of the benchmark work took ~85 ms instead of ~2. A
/// worker runs it on its compute lane as it starts, while the cluster is still forming and the normaliser is computed,
/// and keeps the runner. Nothing it computes is kept.
/// </summary>
public static class StepWarmUp
{
    /// <summary>The runner a worker with these options uses: the one to warm up and keep.</summary>
    public static SliceRunner Runner(TrainingOptions options, int threads, BufferPool pool) =>
        new(new Network(TrainingSetup.SpecOf(options)), options.Batch / options.Slices, options.Slices, threads, pool);

    /// <summary>One step of <paramref name="runner"/> on the first samples with fresh weights, and one optimizer step on
    /// a scratch state; the result buffers go back to the runner's pool.</summary>
    public static void Run(TrainingOptions options, Dataset rawTrain, SliceRunner runner)
    {
        var network = runner.Network;
        if (runner.SliceSize == 0 || rawTrain.Count == 0 || rawTrain.FeatureCount != network.InputSize)
        {
            return;
        }
        var weights = network.Initialize(options.Seed);
        var batch = Enumerable.Range(0, runner.SliceSize * runner.SliceCount).Select(i => i % rawTrain.Count).ToArray();
        var reducer = new GradientTreeReducer(runner.SliceCount, runner.Pool);
        foreach (var (node, sum) in runner.Run(weights, rawTrain, batch, options.Seed, 0, 0, runner.SliceCount))
        {
            reducer.Add(node, sum);
        }
        var schedule = new LearningRateSchedule(options.LearningRate, options.WarmupSteps, options.Decay, options.DecayEvery,
            options.DecayFactor, 1);
        var state = new TrainingState(network, weights, Optimizer.Create(options.Optimizer, options.Momentum), schedule,
            options.Clip);
        state.Apply(reducer.Root, options.Batch, runner.SliceCount);
        reducer.Reset();
    }
}
