using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using DistributedBackprop.Core.Kernels;

namespace DistributedBackprop.Benchmarks;

/// <summary>
/// The weight gradient as the engine computes it: dW = Xᵀ·dY with X read in place (Gemm.MultiplyTransposedA), for the
/// MLP 784-256-128-10 with slices of 32 samples, alone and with the canonical tree's pending sums added as it is
/// written (a thread's fourth slice adds two). GFLOP/s counts the product only.
/// </summary>
[Config(typeof(Config))]
public class WeightGradientBenchmarks
{
    private float[] _x = [];
    private float[] _dy = [];
    private float[] _dw = [];
    private float[][] _addends = [];

    [ParamsSource(nameof(Shapes))]
    public Shape Shape { get; set; } = new("none", 1, 1, 1);

    [Params(0, 2)]
    public int Addends { get; set; }

    public static IEnumerable<Shape> Shapes() =>
        [new Shape("WGrad1", 784, 32, 256), new Shape("WGrad2", 256, 32, 128), new Shape("WGrad3", 128, 32, 10)];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        float[] Values(int n) => Enumerable.Range(0, n).Select(_ => rng.NextSingle() - 0.5f).ToArray();
        _x = Values(Shape.Inner * Shape.Rows);
        _dy = Values(Shape.Inner * Shape.Cols);
        _dw = new float[Shape.Rows * Shape.Cols];
        _addends = Enumerable.Range(0, Addends).Select(_ => Values(Shape.Rows * Shape.Cols)).ToArray();
    }

    [Benchmark]
    public void MultiplyTransposedA() =>
        Gemm.MultiplyTransposedA(_x, _dy, _dw, Shape.Rows, Shape.Inner, Shape.Cols, _addends, 0);

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.ShortRun.WithIterationCount(9).WithId("Short9"));
            AddColumn(StatisticColumn.Median, new GflopsColumn());
            SummaryStyle = SummaryStyle.Default.WithMaxParameterColumnWidth(40);
        }
    }
}
