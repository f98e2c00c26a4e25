using DistributedBackprop.Core.Kernels;

namespace DistributedBackprop.Core.Optim;

/// <summary>Global-norm clipping as PyTorch's clip_grad_norm_: g ← g · min(1, c / (‖g‖ + 1e-6)).</summary>
public static class GradientClipping
{
    public static double GlobalNorm(ReadOnlySpan<float> gradient) => Math.Sqrt(Elementwise.SumOfSquares(gradient));

    /// <summary>The factor min(1, c / (‖g‖ + 1e-6)) for a gradient of norm <paramref name="norm"/>: 1 when the norm is
    /// within <paramref name="maxNorm"/> or clipping is off (0).</summary>
    public static float Scale(double norm, float maxNorm)
    {
        if (maxNorm <= 0f)
        {
            return 1f;
        }
        var scale = (float)(maxNorm / (norm + 1e-6));
        return scale >= 1f ? 1f : scale;
    }

    /// <summary>Scales the gradient when its norm exceeds <paramref name="maxNorm"/> (0 turns clipping off). Returns
    /// the scale applied (1 when untouched). The trainer passes <see cref="Scale"/> to the optimizer instead, which
    /// multiplies as it reads: the same rounded products, one pass less.</summary>
    public static float Clip(Span<float> gradient, double norm, float maxNorm)
    {
        var scale = Scale(norm, maxNorm);
        if (scale < 1f)
        {
            Elementwise.ScaleInPlace(gradient, scale);
        }
        return scale;
    }
}
