namespace DistributedBackprop.Core.Numerics;

/// <summary>
/// One exp for every machine: built only from IEEE-exact operations (fma, multiply, add, rounding), so its bits do not
/// depend on the C runtime, the JIT's vector width or the processor. The ordinary MathF.Exp calls the platform libm.
/// </summary>
public static class DeterministicMath
{
    private const float Log2E = 1.44269504088896341f;
    private const float Ln2Hi = 0.693145751953125f;
    private const float Ln2Lo = 1.428606765330187045e-06f;

    public static float Exp(float x)
    {
        if (float.IsNaN(x))
        {
            return x;
        }
        // 88.72283f is the largest float whose exp rounds to a finite float (ln(float.MaxValue) = 88.7228390…).
        if (x > 88.72283f)
        {
            return float.PositiveInfinity;
        }
        if (x < -103.972f)
        {
            return 0f;
        }
        var n = MathF.Round(x * Log2E);
        var r = MathF.FusedMultiplyAdd(-n, Ln2Hi, x);
        r = MathF.FusedMultiplyAdd(-n, Ln2Lo, r);
        // Taylor polynomial of e^r on |r| <= ln2/2, Horner form with fused steps.
        var p = 1.0f / 5040f;
        p = MathF.FusedMultiplyAdd(p, r, 1.0f / 720f);
        p = MathF.FusedMultiplyAdd(p, r, 1.0f / 120f);
        p = MathF.FusedMultiplyAdd(p, r, 1.0f / 24f);
        p = MathF.FusedMultiplyAdd(p, r, 1.0f / 6f);
        p = MathF.FusedMultiplyAdd(p, r, 0.5f);
        p = MathF.FusedMultiplyAdd(p, r, 1.0f);
        p = MathF.FusedMultiplyAdd(p, r, 1.0f);
        return Scale(p, (int)n);
    }

    public static float Sigmoid(float x) => 1f / (1f + Exp(-x));

    public static float Tanh(float x)
    {
        // tanh(x) = 1 - 2 / (e^{2x} + 1); saturates cleanly at ±1.
        if (x > 20f)
        {
            return 1f;
        }
        if (x < -20f)
        {
            return -1f;
        }
        return 1f - 2f / (Exp(2f * x) + 1f);
    }

    /// <summary>p · 2^n without overflow in the intermediate power for n in the exp range.</summary>
    private static float Scale(float p, int n)
    {
        if (n > 127)
        {
            return p * BitConverter.Int32BitsToSingle(127 + 127 << 23) * BitConverter.Int32BitsToSingle((n - 127 + 127) << 23);
        }
        if (n < -126)
        {
            return p * BitConverter.Int32BitsToSingle(1 << 23) * BitConverter.Int32BitsToSingle((n + 126 + 127) << 23);
        }
        return p * BitConverter.Int32BitsToSingle((n + 127) << 23);
    }
}
