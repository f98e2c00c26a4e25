using System.Numerics;
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
            // Counts in floats are exact integers, so adding a vector of 0s and 1s is the scalar count bit for bit. A
            // branch per element (about half the units fire) mispredicted so often that this loop and the backward one
            // took 18 % of a step.
            var active = pass.Statistics[..OutputSize];
            active.Clear();
            var width = Vector<float>.Count;
            for (var i = 0; i < pass.Rows; i++)
            {
                var row = x.Slice(i * OutputSize, OutputSize);
                var j = 0;
                for (; j <= OutputSize - width; j += width)
                {
                    var fired = Vector.ConditionalSelect(Vector.GreaterThan(new Vector<float>(row[j..]), Vector<float>.Zero),
                        Vector<float>.One, Vector<float>.Zero);
                    (new Vector<float>(active[j..]) + fired).CopyTo(active[j..]);
                }
                for (; j < OutputSize; j++)
                {
                    active[j] += row[j] > 0f ? 1f : 0f;
                }
            }
        }
    }

    public override void Backward(ref LayerPass pass)
    {
        // dX = dY ⊙ [x > 0], a select (no arithmetic): the same bits as the scalar loop, NaN included (x > 0 is false).
        var n = pass.Rows * OutputSize;
        var x = pass.Input[..n];
        var dy = pass.OutputGradient[..n];
        var dx = pass.InputGradient[..n];
        var width = Vector<float>.Count;
        var i = 0;
        for (; i <= n - width; i += width)
        {
            Vector.ConditionalSelect(Vector.GreaterThan(new Vector<float>(x[i..]), Vector<float>.Zero),
                new Vector<float>(dy[i..]), Vector<float>.Zero).CopyTo(dx[i..]);
        }
        for (; i < n; i++)
        {
            dx[i] = x[i] > 0f ? dy[i] : 0f;
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
