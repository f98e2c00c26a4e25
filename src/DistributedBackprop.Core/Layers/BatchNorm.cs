namespace DistributedBackprop.Core.Layers;

/// <summary>
/// Batch normalisation over the rows of a slice (statistics are per slice, as docs/ARCHITECTURE.md (step protocol) fixes, so they do not depend on
/// who computed the slice). Parameters: γ [n], β [n]. Buffers: running mean [n], running variance [n], used in inference.
/// Statistics: the slice's mean [n] and unbiased variance [n]; the coordinator averages them over the slices and folds
/// them into the running buffers with momentum 0.1, as PyTorch does.
/// </summary>
public sealed class BatchNorm(int size) : Layer(size, size)
{
    public const float Epsilon = 1e-5f;
    public const float Momentum = 0.1f;

    public override string Kind => "batch-norm";
    public override int ParameterCount => 2 * OutputSize;
    public override int BufferCount => 2 * OutputSize;
    public override int StatisticsCount => 2 * OutputSize;

    // x̂ [rows × n], then 1/σ [n]
    public override int ScratchSize(int rows) => rows * OutputSize + OutputSize;

    public override void Initialize(Span<float> parameters, Span<float> buffers, ref Numerics.SplitMix64 random)
    {
        parameters[..OutputSize].Fill(1f);
        parameters[OutputSize..].Clear();
        buffers[..OutputSize].Clear();
        buffers[OutputSize..].Fill(1f);
    }

    public override void Forward(ref LayerPass pass)
    {
        var n = OutputSize;
        var rows = pass.Rows;
        var gamma = pass.Parameters[..n];
        var beta = pass.Parameters[n..];
        if (!pass.Training)
        {
            var mean = pass.Buffers[..n];
            var variance = pass.Buffers[n..];
            for (var i = 0; i < rows; i++)
            {
                for (var j = 0; j < n; j++)
                {
                    var xhat = (pass.Input[i * n + j] - mean[j]) / MathF.Sqrt(variance[j] + Epsilon);
                    pass.Output[i * n + j] = gamma[j] * xhat + beta[j];
                }
            }
            return;
        }

        var xHat = pass.Scratch[..(rows * n)];
        var invStd = pass.Scratch.Slice(rows * n, n);
        var batchMean = pass.Statistics[..n];
        var batchVariance = pass.Statistics[n..];
        for (var j = 0; j < n; j++)
        {
            var sum = 0f;
            for (var i = 0; i < rows; i++)
            {
                sum += pass.Input[i * n + j];
            }
            var mu = sum / rows;
            var squares = 0f;
            for (var i = 0; i < rows; i++)
            {
                var d = pass.Input[i * n + j] - mu;
                squares += d * d;
            }
            var biasedVariance = squares / rows;
            invStd[j] = 1f / MathF.Sqrt(biasedVariance + Epsilon);
            batchMean[j] = mu;
            batchVariance[j] = rows > 1 ? squares / (rows - 1) : 0f;
            for (var i = 0; i < rows; i++)
            {
                var k = i * n + j;
                xHat[k] = (pass.Input[k] - mu) * invStd[j];
                pass.Output[k] = gamma[j] * xHat[k] + beta[j];
            }
        }
    }

    public override void Backward(ref LayerPass pass)
    {
        // y = γ x̂ + β, x̂ = (x - μ) / σ over the slice's m rows:
        // dγ = Σ dy·x̂,  dβ = Σ dy,  dx = (γ / σ) · (dy - dβ/m - x̂ · dγ/m)
        var n = OutputSize;
        var rows = pass.Rows;
        var gamma = pass.Parameters[..n];
        var xHat = pass.Scratch[..(rows * n)];
        var invStd = pass.Scratch.Slice(rows * n, n);
        var dGamma = pass.Gradients[..n];
        var dBeta = pass.Gradients[n..];
        for (var j = 0; j < n; j++)
        {
            var sumDy = 0f;
            var sumDyXHat = 0f;
            for (var i = 0; i < rows; i++)
            {
                var dy = pass.OutputGradient[i * n + j];
                sumDy += dy;
                sumDyXHat += dy * xHat[i * n + j];
            }
            dGamma[j] = sumDyXHat;
            dBeta[j] = sumDy;
            if (pass.InputGradient.IsEmpty)
            {
                continue;
            }
            var scale = gamma[j] * invStd[j];
            var meanDy = sumDy / rows;
            var meanDyXHat = sumDyXHat / rows;
            for (var i = 0; i < rows; i++)
            {
                var k = i * n + j;
                pass.InputGradient[k] = scale * (pass.OutputGradient[k] - meanDy - xHat[k] * meanDyXHat);
            }
        }
    }

    public override void UpdateBuffers(Span<float> buffers, ReadOnlySpan<float> meanStatistics)
    {
        for (var k = 0; k < 2 * OutputSize; k++)
        {
            buffers[k] = (1f - Momentum) * buffers[k] + Momentum * meanStatistics[k];
        }
    }
}
