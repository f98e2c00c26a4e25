using DistributedBackprop.Core.Numerics;

namespace DistributedBackprop.Core.Layers;

/// <summary>
/// Inverted dropout: in training each unit is zeroed with probability <see cref="Rate"/> and the survivors are scaled by
/// 1 / (1 - rate), so inference needs no rescaling. Rate 0.0 drops nothing; it must stay below 1.0.
/// The mask is keyed by (seed, step, sample index, layer, unit): the same whoever computes the slice.
/// </summary>
public sealed class Dropout : Layer
{
    public Dropout(int size, float rate) : base(size, size)
    {
        if (!(rate >= 0f && rate < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(rate), rate, "Dropout rate must be in [0, 1).");
        }
        Rate = rate;
    }

    public float Rate { get; }
    public override string Kind => "dropout";
    public override int ScratchSize(int rows) => rows * OutputSize;

    public override void Forward(ref LayerPass pass)
    {
        var n = pass.Rows * OutputSize;
        if (!pass.Training || Rate == 0f)
        {
            pass.Input[..n].CopyTo(pass.Output);
            return;
        }
        var keep = 1f / (1f - Rate);
        var mask = pass.Scratch;
        for (var i = 0; i < pass.Rows; i++)
        {
            var rowKey = KeyedRandom.Key(pass.Seed, (ulong)pass.Step, (ulong)pass.SampleIndices[i], (ulong)pass.LayerIndex);
            for (var j = 0; j < OutputSize; j++)
            {
                var k = i * OutputSize + j;
                mask[k] = KeyedRandom.Uniform(KeyedRandom.Key(rowKey, (ulong)j)) < Rate ? 0f : keep;
                pass.Output[k] = pass.Input[k] * mask[k];
            }
        }
    }

    public override void Backward(ref LayerPass pass)
    {
        // dX = dY ⊙ mask
        var n = pass.Rows * OutputSize;
        if (Rate == 0f)
        {
            pass.OutputGradient[..n].CopyTo(pass.InputGradient);
            return;
        }
        System.Numerics.Tensors.TensorPrimitives.Multiply(pass.OutputGradient[..n], pass.Scratch[..n], pass.InputGradient[..n]);
    }
}
