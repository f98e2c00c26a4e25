namespace DistributedBackprop.Core.Optim;

/// <summary>
/// An update rule over the flat parameter vector. Its state (velocity, moments) is one flat vector too, so checkpoints
/// store it as is. Arithmetic follows PyTorch's definitions; every element is updated independently, so the bits do not
/// depend on the vector width.
/// </summary>
public abstract class Optimizer
{
    public abstract string Name { get; }

    /// <summary>Floats of state per parameter.</summary>
    public abstract int StatePerParameter { get; }

    /// <summary>One update. <paramref name="step"/> counts applied updates from 1 (Adam's bias correction needs it).</summary>
    public void Step(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> state, float learningRate,
        long step) => Step(parameters, gradient, 1f, state, learningRate, step, []);

    /// <summary>
    /// One update with the gradient g·<paramref name="gradientScale"/> (global-norm clipping's factor): each element is
    /// the rounded product, exactly what scaling the gradient in place first would store, without that extra pass.
    /// <paramref name="copyTo"/> is empty, or receives the updated parameters as well (the coordinator's published copy,
    /// written in the same pass).
    /// </summary>
    public abstract void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float gradientScale, Span<float> state,
        float learningRate, long step, Span<float> copyTo);

    public static Optimizer Create(string name, float momentum) => name switch
    {
        "sgd" => new Sgd(),
        "momentum" => new Momentum(momentum),
        "adam" => new Adam(),
        _ => throw new DistbpInputException("Optimizer", $"unknown optimizer '{name}'; use sgd, momentum or adam."),
    };
}

/// <summary>w ← w - lr·g</summary>
public sealed class Sgd : Optimizer
{
    public override string Name => "sgd";
    public override int StatePerParameter => 0;

    public override void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float gradientScale, Span<float> state,
        float learningRate, long step, Span<float> copyTo)
    {
        // w ← w - lr·g, each element a rounded multiply then a rounded subtract (never fused), whatever the width.
        var copy = !copyTo.IsEmpty;
        var i = 0;
        var lr = new System.Numerics.Vector<float>(learningRate);
        var scale = new System.Numerics.Vector<float>(gradientScale);
        for (; i <= parameters.Length - System.Numerics.Vector<float>.Count; i += System.Numerics.Vector<float>.Count)
        {
            var w = new System.Numerics.Vector<float>(parameters[i..]);
            w -= lr * (new System.Numerics.Vector<float>(gradient[i..]) * scale);
            w.CopyTo(parameters[i..]);
            if (copy)
            {
                w.CopyTo(copyTo[i..]);
            }
        }
        for (; i < parameters.Length; i++)
        {
            parameters[i] -= learningRate * (gradient[i] * gradientScale);
            if (copy)
            {
                copyTo[i] = parameters[i];
            }
        }
    }
}

/// <summary>PyTorch's SGD with momentum (dampening 0): v ← μ·v + g; w ← w - lr·v.</summary>
public sealed class Momentum(float momentum) : Optimizer
{
    public float Mu { get; } = momentum;
    public override string Name => "momentum";
    public override int StatePerParameter => 1;

    public override void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float gradientScale, Span<float> state,
        float learningRate, long step, Span<float> copyTo)
    {
        var copy = !copyTo.IsEmpty;
        var velocity = state[..parameters.Length];
        // PyTorch starts the buffer at the first gradient, which is μ·0 + g for a zeroed buffer.
        // Each element: a rounded multiply, add, multiply, subtract (never fused), whatever the vector width.
        var i = 0;
        var mu = new System.Numerics.Vector<float>(Mu);
        var lr = new System.Numerics.Vector<float>(learningRate);
        var scale = new System.Numerics.Vector<float>(gradientScale);
        for (; i <= parameters.Length - System.Numerics.Vector<float>.Count; i += System.Numerics.Vector<float>.Count)
        {
            var g = new System.Numerics.Vector<float>(gradient[i..]) * scale;
            var v = mu * new System.Numerics.Vector<float>(velocity[i..]) + g;
            v.CopyTo(velocity[i..]);
            var w = new System.Numerics.Vector<float>(parameters[i..]) - lr * v;
            w.CopyTo(parameters[i..]);
            if (copy)
            {
                w.CopyTo(copyTo[i..]);
            }
        }
        for (; i < parameters.Length; i++)
        {
            var v = Mu * velocity[i] + gradient[i] * gradientScale;
            velocity[i] = v;
            parameters[i] -= learningRate * v;
            if (copy)
            {
                copyTo[i] = parameters[i];
            }
        }
    }
}

/// <summary>Adam (Kingma &amp; Ba) as PyTorch: m ← β1·m + (1-β1)·g; v ← β2·v + (1-β2)·g²;
/// w ← w - lr·m̂ / (√v̂ + ε) with m̂ = m / (1-β1^t), v̂ = v / (1-β2^t).</summary>
public sealed class Adam(float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f) : Optimizer
{
    public float Beta1 { get; } = beta1;
    public float Beta2 { get; } = beta2;
    public float Epsilon { get; } = epsilon;
    public override string Name => "adam";
    public override int StatePerParameter => 2;

    public override void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float gradientScale, Span<float> state,
        float learningRate, long step, Span<float> copyTo)
    {
        var n = parameters.Length;
        var m = state[..n];
        var v = state.Slice(n, n);
        var correction1 = 1f - MathF.Pow(Beta1, step);
        var correction2 = 1f - MathF.Pow(Beta2, step);
        var stepSize = learningRate / correction1;
        var sqrtCorrection2 = MathF.Sqrt(correction2);
        for (var i = 0; i < n; i++)
        {
            var g = gradient[i] * gradientScale;
            m[i] = Beta1 * m[i] + (1f - Beta1) * g;
            v[i] = Beta2 * v[i] + (1f - Beta2) * g * g;
            var denominator = MathF.Sqrt(v[i]) / sqrtCorrection2 + Epsilon;
            parameters[i] -= stepSize * m[i] / denominator;
        }
        if (!copyTo.IsEmpty)
        {
            parameters.CopyTo(copyTo);
        }
    }
}
