using Xunit;

namespace DistributedBackprop.Core.Tests.Support;

/// <summary>Central differences of a double function, and the comparison of an analytic gradient against them.</summary>
internal static class GradientCheck
{
    public const double Step = 1e-5;

    /// <summary>∂f/∂v_i by central differences, for every i, perturbing a copy of <paramref name="at"/>.</summary>
    public static double[] Numerical(Func<double[], double> f, double[] at)
    {
        var v = (double[])at.Clone();
        var gradient = new double[v.Length];
        for (var i = 0; i < v.Length; i++)
        {
            var keep = v[i];
            v[i] = keep + Step;
            var plus = f(v);
            v[i] = keep - Step;
            var minus = f(v);
            v[i] = keep;
            gradient[i] = (plus - minus) / (2 * Step);
        }
        return gradient;
    }

    /// <summary>
    /// Every element within <paramref name="tolerance"/> relative error; elements far smaller than the largest are
    /// judged against 1e-3 of the largest, since float rounding there is relative to the terms that cancelled.
    /// </summary>
    public static void AssertClose(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        var largest = 0.0;
        foreach (var e in expected)
        {
            largest = Math.Max(largest, Math.Abs(e));
        }
        Assert.True(largest > 0, $"{what}: the reference gradient is all zeros, so the check proves nothing.");
        for (var i = 0; i < expected.Length; i++)
        {
            var scale = Math.Max(Math.Max(Math.Abs(expected[i]), Math.Abs(actual[i])), 1e-3 * largest);
            var error = Math.Abs(actual[i] - expected[i]) / scale;
            Assert.True(error <= tolerance,
                $"{what}[{i}]: analytic {actual[i]:G9} vs numerical {expected[i]:G9} (relative error {error:G3} > {tolerance:G3}).");
        }
    }

    public static double Dot(double[] c, double[] y)
    {
        var s = 0.0;
        for (var k = 0; k < y.Length; k++)
        {
            s += c[k] * y[k];
        }
        return s;
    }

    public static float[] Floats(this double[] v) => v.Select(x => (float)x).ToArray();

    public static double[] Doubles(this float[] v) => v.Select(x => (double)x).ToArray();

    /// <summary>Uniform in [-1, 1), seeded.</summary>
    public static float[] Random(Random random, int count, double scale = 1) =>
        Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() * 2 - 1) * scale)).ToArray();

    /// <summary>Random sign, magnitude in [min, 1): keeps inputs away from the kink at 0 of ReLU-like layers.</summary>
    public static float[] AwayFromZero(Random random, int count, double min = 0.1) =>
        Enumerable.Range(0, count)
            .Select(_ => (float)((random.Next(2) == 0 ? -1 : 1) * (min + (1 - min) * random.NextDouble())))
            .ToArray();
}
