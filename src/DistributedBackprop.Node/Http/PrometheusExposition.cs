using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using DistributedBackprop.Cluster.Telemetry;

namespace DistributedBackprop.Node.Http;

/// <summary>
/// Listens to the <see cref="TrainingMetrics"/> meter and renders what it has seen in the Prometheus text exposition
/// format (version 0.0.4): counters as running sums, gauges as the last value, histograms as cumulative buckets.
/// </summary>
public sealed class PrometheusExposition : IDisposable
{
    private static readonly double[] Buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly MeterListener _listener = new();
    private readonly object _gate = new();
    private readonly SortedDictionary<string, Series> _series = new(StringComparer.Ordinal);

    private sealed class Series(Instrument instrument)
    {
        public Instrument Instrument { get; } = instrument;
        public double Value { get; set; } = double.NaN;
        public double Sum { get; set; }
        public long Count { get; set; }
        public long[] BucketCounts { get; } = new long[Buckets.Length];
        /// <summary>A counter's sums per label set (rendered as <c>{name="value",...}</c>), for measurements with tags.</summary>
        public SortedDictionary<string, double> Labelled { get; } = new(StringComparer.Ordinal);
    }

    public PrometheusExposition()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == TrainingMetrics.MeterName)
            {
                lock (_gate)
                {
                    _series[instrument.Name] = new Series(instrument);
                }
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, Labels(tags)));
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, Labels(tags)));
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Record(instrument, value, Labels(tags)));
        _listener.Start();
        TrainingMetrics.EnsureCreated();
    }

    /// <summary>Tags as a Prometheus label set (names in order, values escaped), or "" for none.</summary>
    private static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.IsEmpty)
        {
            return "";
        }
        var pairs = new List<string>(tags.Length);
        foreach (var (key, value) in tags)
        {
            var text = Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
            pairs.Add($"{key}=\"{text.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n")}\"");
        }
        pairs.Sort(StringComparer.Ordinal);
        return "{" + string.Join(',', pairs) + "}";
    }

    private void Record(Instrument instrument, double value, string labels = "")
    {
        lock (_gate)
        {
            if (!_series.TryGetValue(instrument.Name, out var series))
            {
                return;
            }
            switch (instrument)
            {
                case Counter<long> or Counter<double> when labels.Length > 0:
                    series.Labelled[labels] = series.Labelled.GetValueOrDefault(labels) + value;
                    break;
                case Counter<long> or Counter<double>:
                    series.Sum += value;
                    break;
                case Histogram<double>:
                    series.Sum += value;
                    series.Count++;
                    for (var i = 0; i < Buckets.Length; i++)
                    {
                        if (value <= Buckets[i])
                        {
                            series.BucketCounts[i]++;
                        }
                    }
                    break;
                default:
                    series.Value = value;
                    break;
            }
        }
    }

    /// <summary>The page served at /metrics (content type text/plain; version=0.0.4).</summary>
    public string Render()
    {
        _listener.RecordObservableInstruments();
        var text = new StringBuilder();
        lock (_gate)
        {
            foreach (var (name, series) in _series)
            {
                var instrument = series.Instrument;
                text.Append("# HELP ").Append(name).Append(' ').Append(instrument.Description ?? name).Append('\n');
                switch (instrument)
                {
                    case Counter<long> or Counter<double>:
                        text.Append("# TYPE ").Append(name).Append(" counter\n");
                        if (series.Labelled.Count == 0 || series.Sum != 0)
                        {
                            text.Append(name).Append(' ').Append(Format(series.Sum)).Append('\n');
                        }
                        foreach (var (labels, sum) in series.Labelled)
                        {
                            text.Append(name).Append(labels).Append(' ').Append(Format(sum)).Append('\n');
                        }
                        break;
                    case Histogram<double>:
                        text.Append("# TYPE ").Append(name).Append(" histogram\n");
                        for (var i = 0; i < Buckets.Length; i++)
                        {
                            text.Append(name).Append("_bucket{le=\"").Append(Format(Buckets[i])).Append("\"} ")
                                .Append(series.BucketCounts[i]).Append('\n');
                        }
                        text.Append(name).Append("_bucket{le=\"+Inf\"} ").Append(series.Count).Append('\n');
                        text.Append(name).Append("_sum ").Append(Format(series.Sum)).Append('\n');
                        text.Append(name).Append("_count ").Append(series.Count).Append('\n');
                        break;
                    default:
                        text.Append("# TYPE ").Append(name).Append(" gauge\n");
                        text.Append(name).Append(' ').Append(Format(series.Value)).Append('\n');
                        break;
                }
            }
        }
        return text.ToString();
    }

    private static string Format(double value) => value switch
    {
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        _ when double.IsNaN(value) => "NaN",
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };

    public void Dispose() => _listener.Dispose();
}
