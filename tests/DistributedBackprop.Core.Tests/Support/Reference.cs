using DistributedBackprop.Core.Numerics;

namespace DistributedBackprop.Core.Tests.Support;

/// <summary>
/// Double-precision forwards written straight from the math, independent of the engine's float kernels: the oracle the
/// gradient checks differentiate numerically. Row-major [rows × width] everywhere.
/// </summary>
internal static class Reference
{
    /// <summary>y = x·W + b, W [in × out] row-major then b [out] in <paramref name="p"/>.</summary>
    public static double[] Dense(double[] x, double[] p, int rows, int inputs, int outputs)
    {
        var y = new double[rows * outputs];
        for (var i = 0; i < rows; i++)
        {
            for (var j = 0; j < outputs; j++)
            {
                var s = p[inputs * outputs + j];
                for (var k = 0; k < inputs; k++)
                {
                    s += x[i * inputs + k] * p[k * outputs + j];
                }
                y[i * outputs + j] = s;
            }
        }
        return y;
    }

    public static double[] Relu(double[] x) => x.Select(v => Math.Max(0, v)).ToArray();

    public static double[] LeakyRelu(double[] x, double slope) => x.Select(v => v > 0 ? v : slope * v).ToArray();

    public static double[] Sigmoid(double[] x) => x.Select(v => 1 / (1 + Math.Exp(-v))).ToArray();

    public static double[] Tanh(double[] x) => x.Select(Math.Tanh).ToArray();

    /// <summary>Inverted dropout with the mask keyed by (seed, step, sample, layer, unit), survivors × 1/(1-rate).</summary>
    public static double[] Dropout(double[] x, float rate, int width, ulong seed, long step, int[] samples, int layer)
    {
        var y = new double[x.Length];
        for (var i = 0; i < samples.Length; i++)
        {
            var rowKey = KeyedRandom.Key(seed, (ulong)step, (ulong)samples[i], (ulong)layer);
            for (var j = 0; j < width; j++)
            {
                var dropped = KeyedRandom.Uniform(KeyedRandom.Key(rowKey, (ulong)j)) < rate;
                y[i * width + j] = dropped ? 0 : x[i * width + j] / (1.0 - rate);
            }
        }
        return y;
    }

    /// <summary>Training-mode batch norm over the rows: biased variance, ε = 1e-5, γ then β in <paramref name="p"/>.</summary>
    public static double[] BatchNorm(double[] x, double[] p, int rows, int width)
    {
        var y = new double[x.Length];
        for (var j = 0; j < width; j++)
        {
            var mean = 0.0;
            for (var i = 0; i < rows; i++)
            {
                mean += x[i * width + j];
            }
            mean /= rows;
            var variance = 0.0;
            for (var i = 0; i < rows; i++)
            {
                variance += (x[i * width + j] - mean) * (x[i * width + j] - mean);
            }
            variance /= rows;
            for (var i = 0; i < rows; i++)
            {
                y[i * width + j] = p[j] * (x[i * width + j] - mean) / Math.Sqrt(variance + 1e-5) + p[width + j];
            }
        }
        return y;
    }

    /// <summary>Σ_rows 1/2 Σ_c (y_c - onehot(t)_c)².</summary>
    public static double MeanSquaredError(double[] y, int[] labels, int classes)
    {
        var e = 0.0;
        for (var i = 0; i < labels.Length; i++)
        {
            for (var c = 0; c < classes; c++)
            {
                var d = y[i * classes + c] - (c == labels[i] ? 1 : 0);
                e += 0.5 * d * d;
            }
        }
        return e;
    }

    /// <summary>Σ_rows -log softmax(z)_t, computed as log Σ e^z - z_t.</summary>
    public static double SoftmaxCrossEntropy(double[] z, int[] labels, int classes)
    {
        var e = 0.0;
        for (var i = 0; i < labels.Length; i++)
        {
            var row = z.AsSpan(i * classes, classes);
            var max = double.NegativeInfinity;
            foreach (var v in row)
            {
                max = Math.Max(max, v);
            }
            var sum = 0.0;
            foreach (var v in row)
            {
                sum += Math.Exp(v - max);
            }
            e += Math.Log(sum) + max - row[labels[i]];
        }
        return e;
    }
}
