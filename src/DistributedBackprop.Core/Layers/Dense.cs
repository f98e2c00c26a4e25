using DistributedBackprop.Core.Kernels;

namespace DistributedBackprop.Core.Layers;

public enum WeightInit
{
    /// <summary>He (Kaiming) uniform, for ReLU-like activations: U(±sqrt(6 / fanIn)).</summary>
    He,
    /// <summary>Xavier (Glorot) uniform, for sigmoid and tanh: U(±sqrt(6 / (fanIn + fanOut))).</summary>
    Xavier,
}

/// <summary>Fully connected layer. Parameters: W [in × out] row-major, then b [out].</summary>
public sealed class Dense(int inputSize, int outputSize, WeightInit init) : Layer(inputSize, outputSize)
{
    public WeightInit Init { get; } = init;
    public override string Kind => "dense";
    public override int ParameterCount => InputSize * OutputSize + OutputSize;
    private int WeightCount => InputSize * OutputSize;

    // Wᵀ [out × in] for the input gradient.
    public override int ScratchSize(int rows) => OutputSize * InputSize;

    public override bool AddsAddends => true;

    public override int PreparedSize => OutputSize * InputSize;

    public override void Prepare(ReadOnlySpan<float> parameters, Span<float> prepared) =>
        Gemm.Transpose(parameters[..WeightCount], prepared, InputSize, OutputSize);

    public override void Initialize(Span<float> parameters, Span<float> buffers, ref Numerics.SplitMix64 random)
    {
        var limit = Init == WeightInit.He
            ? MathF.Sqrt(6f / InputSize)
            : MathF.Sqrt(6f / (InputSize + OutputSize));
        var w = parameters[..WeightCount];
        for (var i = 0; i < w.Length; i++)
        {
            w[i] = random.NextSymmetric(limit);
        }
        parameters[WeightCount..].Clear();
    }

    public override void Forward(ref LayerPass pass)
    {
        // Y = X·W + b    X: [rows × in], W: [in × out], Y: [rows × out]
        var w = pass.Parameters[..WeightCount];
        var b = pass.Parameters.Slice(WeightCount, OutputSize);
        Gemm.Multiply(pass.Input, w, pass.Output, pass.Rows, InputSize, OutputSize);
        for (var i = 0; i < pass.Rows; i++)
        {
            Elementwise.AddInPlace(pass.Output.Slice(i * OutputSize, OutputSize), b);
        }
    }

    public override void Backward(ref LayerPass pass)
    {
        var rows = pass.Rows;
        var dW = pass.Gradients[..WeightCount];
        var db = pass.Gradients.Slice(WeightCount, OutputSize);

        // dW = Xᵀ·dY    [in × rows]·[rows × out]: each dW[p,j] sums over the slice's rows in order; the tree's pending
        // sums are added tile by tile as the product is written.
        Gemm.MultiplyTransposedA(pass.Input, pass.OutputGradient, dW, InputSize, rows, OutputSize, pass.Addends,
            pass.GradientOffset);

        // db = Σ_rows dY
        Elementwise.ColumnSums(pass.OutputGradient, db, rows, OutputSize);
        Elementwise.AddAddends(db, pass.Addends, pass.GradientOffset + WeightCount);

        // dX = dY·Wᵀ    [rows × out]·[out × in]
        if (!pass.InputGradient.IsEmpty)
        {
            var wT = pass.Prepared;
            if (wT.IsEmpty)
            {
                var scratch = pass.Scratch[..(OutputSize * InputSize)];
                Prepare(pass.Parameters, scratch);
                wT = scratch;
            }
            Gemm.Multiply(pass.OutputGradient, wT, pass.InputGradient, rows, OutputSize, InputSize);
        }
    }
}
