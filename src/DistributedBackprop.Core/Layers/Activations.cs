using DistributedBackprop.Core.Numerics;

namespace DistributedBackprop.Core.Layers;

/// <summary>ReLU: y = max(0, x). Its statistics count, per unit, the rows in which it fired — a unit that never fires
/// over an epoch is dead (no gradient ever flows through it again).</summary>
public sealed class Relu(int size) : Layer(size, size)
{
    public override string Kind => "relu";
    public override int StatisticsCount => OutputSize;

    public override void Forward(ref LayerPass pass)
    {
        var n = pass.Rows * OutputSize;
        var x = pass.Input[..n];
        var y = pass.Output[..n];
        System.Numerics.Tensors.TensorPrimitives.Max(x, 0f, y);
        if (pass.Training)
        {
            var active = pass.Statistics;
            active.Clear();
            for (var i = 0; i < pass.Rows; i++)
            {
                var row = x.Slice(i * OutputSize, OutputSize);
                for (var j = 0; j < OutputSize; j++)
                {
                    if (row[j] > 0f)
                    {
                        active[j] += 1f;
                    }
                }
            }
        }
    }

    public override void Backward(ref LayerPass pass)
    {
        // dX = dY ⊙ [x > 0]
        var n = pass.Rows * OutputSize;
        for (var i = 0; i < n; i++)
        {
            pass.InputGradient[i] = pass.Input[i] > 0f ? pass.OutputGradient[i] : 0f;
        }
    }
}

/// <summary>Leaky ReLU: y = x for x > 0, else slope·x (slope 0.01): units cannot die.</summary>
public sealed class LeakyRelu(int size, float slope = 0.01f) : Layer(size, size)
{
    public float Slope { get; } = slope;
    public override string Kind => "leaky-relu";

    public override void Forward(ref LayerPass pass)
    {
        var n = pass.Rows * OutputSize;
        for (var i = 0; i < n; i++)
        {
            var x = pass.Input[i];
            pass.Output[i] = x > 0f ? x : Slope * x;
        }
    }

    public override void Backward(ref LayerPass pass)
    {
        // dX = dY ⊙ (x > 0 ? 1 : slope)
        var n = pass.Rows * OutputSize;
        for (var i = 0; i < n; i++)
        {
            var dy = pass.OutputGradient[i];
            pass.InputGradient[i] = pass.Input[i] > 0f ? dy : Slope * dy;
        }
    }
}

/// <summary>Sigmoid: y = 1 / (1 + e^-x); saturates, so deep sigmoid stacks show vanishing gradients.</summary>
public sealed class Sigmoid(int size) : Layer(size, size)
{
    public override string Kind => "sigmoid";

    public override void Forward(ref LayerPass pass)
    {
        var n = pass.Rows * OutputSize;
        for (var i = 0; i < n; i++)
        {
            pass.Output[i] = DeterministicMath.Sigmoid(pass.Input[i]);
        }
    }

    public override void Backward(ref LayerPass pass)
    {
        // dX = dY ⊙ y(1 - y)
        var n = pass.Rows * OutputSize;
        for (var i = 0; i < n; i++)
        {
            var y = pass.Output[i];
            pass.InputGradient[i] = pass.OutputGradient[i] * (y * (1f - y));
        }
    }
}

/// <summary>Tanh: y = tanh(x).</summary>
public sealed class Tanh(int size) : Layer(size, size)
{
    public override string Kind => "tanh";

    public override void Forward(ref LayerPass pass)
    {
        var n = pass.Rows * OutputSize;
        for (var i = 0; i < n; i++)
        {
            pass.Output[i] = DeterministicMath.Tanh(pass.Input[i]);
        }
    }

    public override void Backward(ref LayerPass pass)
    {
        // dX = dY ⊙ (1 - y²)
        var n = pass.Rows * OutputSize;
        for (var i = 0; i < n; i++)
        {
            var y = pass.Output[i];
            pass.InputGradient[i] = pass.OutputGradient[i] * (1f - y * y);
        }
    }
}
