using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using DistributedBackprop.Core.Kernels;

namespace DistributedBackprop.Benchmarks;

/// <summary>One single-threaded Gemm.Multiply of the MLP 784-256-128-10 shapes, per slice size n.</summary>
[Config(typeof(Config))]
public class GemmBenchmarks
{
    private float[] _a = [];
    private float[] _b = [];
    private float[] _c = [];

    /// <summary>Which product of the MLP: Fwd = X·W, WGrad = Xᵀ·dY, IGrad = dY·Wᵀ.</summary>
    [ParamsSource(nameof(AllShapes))]
    public Shape Shape { get; set; } = new("none", 1, 1, 1);

    public static IEnumerable<Shape> AllShapes()
    {
        foreach (var n in new[] { 32, 64, 128 })
        {
            yield return new Shape("Fwd1", n, 784, 256);
            yield return new Shape("Fwd2", n, 256, 128);
            yield return new Shape("Fwd3", n, 128, 10);
            yield return new Shape("WGrad1", 784, n, 256);
            yield return new Shape("WGrad2", 256, n, 128);
            yield return new Shape("WGrad3", 128, n, 10);
            yield return new Shape("IGrad2", n, 128, 256);
            yield return new Shape("IGrad3", n, 10, 128);
        }
    }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        _a = Enumerable.Range(0, Shape.Rows * Shape.Inner).Select(_ => rng.NextSingle() - 0.5f).ToArray();
        _b = Enumerable.Range(0, Shape.Inner * Shape.Cols).Select(_ => rng.NextSingle() - 0.5f).ToArray();
        _c = new float[Shape.Rows * Shape.Cols];
    }

    [Benchmark]
    public void Multiply() => Gemm.Multiply(_a, _b, _c, Shape.Rows, Shape.Inner, Shape.Cols);

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            // Short: one launch, 3 warmups, 9 measured iterations (~8 s per shape, ~3-4 min for all 24).
            AddJob(Job.ShortRun.WithIterationCount(9).WithId("Short9"));
            AddColumn(StatisticColumn.Median, new GflopsColumn());
            SummaryStyle = SummaryStyle.Default.WithMaxParameterColumnWidth(40);
        }
    }
}

/// <summary>A benchmarked product; prints as "Name rows×inner×cols".</summary>
public sealed record Shape(string Name, int Rows, int Inner, int Cols)
{
    public double Flops => 2.0 * Rows * Inner * Cols;

    public override string ToString() => $"{Name} {Rows}x{Inner}x{Cols}";
}

/// <summary>GFLOP/s = 2·rows·inner·cols / median time.</summary>
public sealed class GflopsColumn : IColumn
{
    public string Id => "GFLOPS";
    public string ColumnName => "GFLOP/s (median)";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "2*rows*inner*cols / median time, in 1e9 floating-point operations per second";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
        GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is null || benchmarkCase.Parameters["Shape"] is not Shape shape)
        {
            return "-";
        }
        return (shape.Flops / report.ResultStatistics.Median).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
    }

    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}

public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
