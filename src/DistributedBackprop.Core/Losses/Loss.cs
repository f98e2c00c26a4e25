using DistributedBackprop.Core.Numerics;

namespace DistributedBackprop.Core.Losses;

/// <summary>
/// A loss over the network's raw outputs and integer class labels. <see cref="Evaluate"/> writes dE/dy for each row
/// (per sample, not divided by anything) and returns the slice's loss sum and correct-prediction count.
/// </summary>
public abstract class Loss
{
    public abstract string Name { get; }

    public abstract (double LossSum, int Correct) Evaluate(ReadOnlySpan<float> outputs, ReadOnlySpan<int> labels,
        Span<float> outputGradient, int rows, int classes);

    public static Loss Create(string name) => name switch
    {
        "cross-entropy" => new SoftmaxCrossEntropy(),
        "mse" => new MeanSquaredError(),
        _ => throw new DistbpInputException("Loss", $"unknown loss '{name}'; use cross-entropy or mse."),
    };

    /// <summary>The index of the largest value; the first one on a tie.</summary>
    public static int ArgMax(ReadOnlySpan<float> row)
    {
        var best = 0;
        for (var c = 1; c < row.Length; c++)
        {
            if (row[c] > row[best])
            {
                best = c;
            }
        }
        return best;
    }
}

/// <summary>The error function E = 1/2 Σ_c (y_c - t_c)² against a one-hot target t; dE/dy = y - t.</summary>
public sealed class MeanSquaredError : Loss
{
    public override string Name => "mse";

    public override (double LossSum, int Correct) Evaluate(ReadOnlySpan<float> outputs, ReadOnlySpan<int> labels,
        Span<float> outputGradient, int rows, int classes)
    {
        var lossSum = 0.0;
        var correct = 0;
        for (var i = 0; i < rows; i++)
        {
            var y = outputs.Slice(i * classes, classes);
            var rowLoss = 0f;
            for (var c = 0; c < classes; c++)
            {
                var diff = y[c] - (c == labels[i] ? 1f : 0f);
                if (!outputGradient.IsEmpty)
                {
                    outputGradient[i * classes + c] = diff;
                }
                rowLoss += 0.5f * diff * diff;
            }
            lossSum += rowLoss;
            correct += ArgMax(y) == labels[i] ? 1 : 0;
        }
        return (lossSum, correct);
    }
}

/// <summary>Softmax followed by cross-entropy: E = -log softmax(z)_t; dE/dz = softmax(z) - onehot(t).</summary>
public sealed class SoftmaxCrossEntropy : Loss
{
    public override string Name => "cross-entropy";

    public override (double LossSum, int Correct) Evaluate(ReadOnlySpan<float> outputs, ReadOnlySpan<int> labels,
        Span<float> outputGradient, int rows, int classes)
    {
        Span<float> e = classes <= 256 ? stackalloc float[classes] : new float[classes];
        var lossSum = 0.0;
        var correct = 0;
        for (var i = 0; i < rows; i++)
        {
            var z = outputs.Slice(i * classes, classes);
            var (max, sum) = ShiftedExp(z, e);
            if (!outputGradient.IsEmpty)
            {
                for (var c = 0; c < classes; c++)
                {
                    outputGradient[i * classes + c] = e[c] / sum - (c == labels[i] ? 1f : 0f);
                }
            }
            // log-sum-exp form: -log p_t = log Σ e^(z - max) - (z_t - max); reported only, never differentiated.
            lossSum += Math.Log(sum) - (z[labels[i]] - max);
            correct += ArgMax(z) == labels[i] ? 1 : 0;
        }
        return (lossSum, correct);
    }

    /// <summary>softmax(z) of one row, with the same bits as the probabilities training differentiates.</summary>
    public static void Probabilities(ReadOnlySpan<float> z, Span<float> probabilities)
    {
        var (_, sum) = ShiftedExp(z, probabilities);
        for (var c = 0; c < z.Length; c++)
        {
            probabilities[c] /= sum;
        }
    }

    /// <summary>e[c] = exp(z[c] − max z), the largest logit shifted to 0 so nothing overflows; returns max and Σ e.</summary>
    private static (float Max, float Sum) ShiftedExp(ReadOnlySpan<float> z, Span<float> e)
    {
        var max = z[ArgMax(z)];
        var sum = 0f;
        for (var c = 0; c < z.Length; c++)
        {
            e[c] = DeterministicMath.Exp(z[c] - max);
            sum += e[c];
        }
        return (max, sum);
    }
}
