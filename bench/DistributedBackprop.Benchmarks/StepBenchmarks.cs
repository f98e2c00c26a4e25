using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Benchmarks;

/// <summary>
/// One training step of the benchmark work (MLP 784-256-128-10, batch 256 in 8 slices) as a worker computes it: every
/// slice's forward and backward pass and the canonical tree, on 1 and 2 compute threads, with no actors around it. The
/// ratio of the two medians is the engine's own parallel speed-up. Full Fashion-MNIST when installed (DATA or
/// /usr/share/datasets/fashion-mnist), else the embedded sample.
/// </summary>
[Config(typeof(Config))]
public class StepBenchmarks
{
    private SliceRunner _runner = null!;
    private TrainingSetup _setup = null!;
    private ModelWeights _weights = null!;
    private int[] _permutation = [];
    private long _step;

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var data = Environment.GetEnvironmentVariable("DATA") ?? "/usr/share/datasets/fashion-mnist";
        var options = new TrainingOptions { DataPath = Directory.Exists(data) ? data : null, Threads = Threads };
        _setup = TrainingSetup.Create(options);
        _weights = _setup.NewState().Weights;
        _permutation = _setup.Plan.Permutation(0);
        _runner = new SliceRunner(_setup.Network, _setup.Plan.SliceSize, options.Slices, Threads,
            BufferPool.ForSlices(_setup.Network.ResultLength, options.Slices));
    }

    [GlobalCleanup]
    public void Cleanup() => _runner.Dispose();

    [Benchmark]
    public void Step()
    {
        var options = _setup.Options;
        var stepInEpoch = (int)(_step++ % _setup.Plan.StepsPerEpoch);
        var batch = _permutation.AsMemory(stepInEpoch * options.Batch, options.Batch);
        foreach (var (_, sum) in _runner.Run(_weights, _setup.Data.Train, batch, options.Seed, stepInEpoch, 0,
                     options.Slices))
        {
            _runner.Pool.Return(sum);
        }
    }

    private sealed class Config : ManualConfig
    {
        public Config() => AddJob(Job.ShortRun.WithIterationCount(15).WithId("Short15"));
    }
}
