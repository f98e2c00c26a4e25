using System.Text.Json.Nodes;
using DistributedBackprop.Core;
using ScottPlot;

namespace DistributedBackprop.Node.Report;

/// <summary>
/// The dashboard's charts as PNG files (ScottPlot): one per chart, drawn from a finished run folder.
/// A chart whose data the run never wrote (dead-unit fractions without ReLU layers, say) is left out.
/// </summary>
public static class ReportPlots
{
    public const int Width = 900;
    public const int Height = 480;

    /// <summary>The dashboard's colours (Tableau 10), so a PNG and the page look alike.</summary>
    private static readonly Color[] Palette =
        new[] { "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac" }
            .Select(Color.FromHex).ToArray();

    /// <summary>One line of a chart: its points, and whether it is sparse (held-out evaluations: drawn with markers).</summary>
    public sealed record Line(string Label, double[] Steps, double[] Values, bool Sparse = false, bool Dashed = false);

    public sealed record Chart(string File, string Title, string YLabel, IReadOnlyList<Line> Lines, bool Log = false,
        (double Min, double Max)? Range = null);

    /// <summary>The charts of <paramref name="run"/>, in the dashboard's order, those without data left out.</summary>
    public static IReadOnlyList<Chart> ChartsOf(RunRecord run)
    {
        var steps = run.Steps.ToList();
        var evals = run.Evals.ToList();
        var layerNames = steps.Select(s => s.Strings("layer_names")).FirstOrDefault(n => n.Length > 0) ?? [];
        var layers = Math.Max(layerNames.Length, steps.Select(s => s.Numbers("layer_grad_norms").Length).DefaultIfEmpty(0).Max());
        var deadLayers = steps.Select(s => s.Numbers("dead_fractions").Length).DefaultIfEmpty(0).Max();
        var configClip = run.Config.Number("clip") is > 0 and { } c ? c : (double?)null;

        Line Of(string label, IEnumerable<JsonObject> lines, Func<JsonObject, double?> value, bool sparse = false, bool dashed = false)
        {
            var points = lines.Select(l => (Step: l.Number("step"), Value: value(l)))
                .Where(p => p.Step is not null && p.Value is not null).ToList();
            return new Line(label, points.Select(p => p.Step!.Value).ToArray(), points.Select(p => p.Value!.Value).ToArray(),
                sparse, dashed);
        }

        Line Step(string label, string key) => Of(label, steps, l => l.Number(key));

        Chart[] charts =
        [
            new("loss.png", "Loss", "loss",
                [Step("training loss", "loss"), Of("held-out loss", evals, l => l.Number("test_loss"), sparse: true)]),
            new("accuracy.png", "Accuracy", "accuracy",
                [Step("training accuracy", "accuracy"), Of("held-out accuracy", evals, l => l.Number("test_accuracy"), sparse: true)],
                Range: (0, 1)),
            new("throughput.png", "Throughput", "samples / s", [Step("samples/s", "samples_per_s")]),
            new("step-time.png", "Step time", "ms",
                [Step("whole step", "step_ms"), Step("compute", "compute_ms"), Step("communication", "comm_ms"), Step("coordinator", "coordinator_ms")]),
            new("grad-norm.png", "Gradient norm against the clip threshold", "global L2 norm (log)",
                [
                    Step("norm", "grad_norm"), Step("after clipping", "grad_norm_clipped"),
                    Of("clip threshold", steps, l => l.Number("clip") ?? configClip, dashed: true),
                ], Log: true),
            new("layer-grad-norms.png", "Per-layer gradient norms", "L2 norm (log)",
                Enumerable.Range(0, layers).Select(i => Of(i < layerNames.Length ? layerNames[i] : $"layer {i}", steps,
                    l => l.Numbers("layer_grad_norms") is var n && i < n.Length ? n[i] : null)).ToList(), Log: true),
            new("dead-units.png", "Dead ReLU units", "fraction that never fired",
                Enumerable.Range(0, deadLayers).Select(i => Of($"ReLU layer {i + 1}", steps,
                    l => l.Numbers("dead_fractions") is var n && i < n.Length ? n[i] : null)).ToList(), Range: (0, 1)),
            new("learning-rate.png", "Learning rate", "learning rate", [Step("learning rate", "lr")]),
        ];
        return charts
            .Select(chart => chart with
            {
                Lines = chart.Lines.Where(l => l.Steps.Length > 0).Select(l => chart.Log ? Positive(l) : l)
                    .Where(l => l.Steps.Length > 0).ToList(),
            })
            .Where(chart => chart.Lines.Count > 0)
            .ToList();
    }

    /// <summary>A log-scale line keeps its positive values only (a zero norm has no logarithm).</summary>
    private static Line Positive(Line line)
    {
        var keep = Enumerable.Range(0, line.Values.Length).Where(i => line.Values[i] > 0).ToArray();
        return line with { Steps = keep.Select(i => line.Steps[i]).ToArray(), Values = keep.Select(i => line.Values[i]).ToArray() };
    }

    /// <summary>The chart as PNG bytes.</summary>
    public static byte[] Render(Chart chart)
    {
        var plot = new Plot();
        plot.Font.Set("DejaVu Sans");
        plot.Title(chart.Title);
        plot.XLabel("step");
        plot.YLabel(chart.YLabel);
        for (var i = 0; i < chart.Lines.Count; i++)
        {
            var line = chart.Lines[i];
            var ys = chart.Log ? line.Values.Select(Math.Log10).ToArray() : line.Values;
            var scatter = plot.Add.Scatter(line.Steps, ys, line.Dashed ? Colors.Red : Palette[i % Palette.Length]);
            scatter.LegendText = line.Label;
            scatter.LineWidth = 1.5f;
            scatter.MarkerSize = line.Sparse ? 7 : 0;
            scatter.LinePattern = line.Dashed ? LinePattern.Dashed : LinePattern.Solid;
        }
        if (chart.Log)
        {
            // Values are drawn as log10; the ticks say the values themselves.
            plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                IntegerTicksOnly = true,
                LabelFormatter = y => Math.Pow(10, y).ToString("G3", System.Globalization.CultureInfo.InvariantCulture),
            };
            plot.Grid.MinorLineWidth = 1; // 2, 3, ... 9 within each decade
        }
        if (chart.Range is var (min, max))
        {
            plot.Axes.SetLimitsY(min, max);
        }
        plot.ShowLegend(Alignment.UpperRight);
        return plot.GetImageBytes(Width, Height, ImageFormat.Png);
    }

    /// <summary>Writes every chart of <paramref name="run"/> into <paramref name="folder"/>; returns the file names.</summary>
    public static IReadOnlyList<string> Write(RunRecord run, string folder)
    {
        var written = new List<string>();
        foreach (var chart in ChartsOf(run))
        {
            AtomicWrite.Bytes(Path.Combine(folder, chart.File), Render(chart));
            written.Add(chart.File);
        }
        return written;
    }
}
