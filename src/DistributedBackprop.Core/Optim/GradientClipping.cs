using DistributedBackprop.Core.Kernels;

namespace DistributedBackprop.Core.Optim;

/// <summary>Global-norm clipping as PyTorch's clip_grad_norm_: g ← g · min(1, c / (‖g‖ + 1e-6)).</summary>
public static class GradientClipping
{
    public static double GlobalNorm(ReadOnlySpan<float> gradient) => Math.Sqrt(Elementwise.SumOfSquares(gradient));

    /// <summary>Scales the gradient when its norm exceeds <paramref name="maxNorm"/> (0 turns clipping off). Returns
    /// the scale applied (1 when untouched).</summary>
    public static float Clip(Span<float> gradient, double norm, float maxNorm)
    {
        if (maxNorm <= 0f)
        {
            return 1f;
        }
        var scale = (float)(maxNorm / (norm + 1e-6));
        if (scale >= 1f)
        {
            return 1f;
        }
        Elementwise.ScaleInPlace(gradient, scale);
        return scale;
    }
}
