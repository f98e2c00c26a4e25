namespace DistributedBackprop.Core.Layers;

/// <summary>
/// One layer of the stack. Its trainable parameters, its non-trainable buffers (batch-norm running statistics) and its
/// per-slice statistics (batch-norm batch moments, ReLU activity) are windows into the network's flat vectors.
/// Forward and backward sit side by side in every subclass: backward is the chain rule for that layer.
/// Gradients are SUMS over the rows of the slice, not means: the coordinator divides by the global batch.
/// </summary>
public abstract class Layer(int inputSize, int outputSize)
{
    public int InputSize { get; } = inputSize;
    public int OutputSize { get; } = outputSize;

    public abstract string Kind { get; }
    public virtual int ParameterCount => 0;
    public virtual int BufferCount => 0;
    public virtual int StatisticsCount => 0;

    /// <summary>Private scratch kept from forward to backward (masks, normalised inputs, transposes).</summary>
    public virtual int ScratchSize(int rows) => 0;

    /// <summary>Floats of what backward derives from the parameters alone (Wᵀ), prepared once per weights version and
    /// shared by every slice; 0: nothing.</summary>
    public virtual int PreparedSize => 0;

    public virtual void Prepare(ReadOnlySpan<float> parameters, Span<float> prepared)
    {
    }

    public virtual void Initialize(Span<float> parameters, Span<float> buffers, ref Numerics.SplitMix64 random)
    {
    }

    public abstract void Forward(ref LayerPass pass);

    /// <summary>Backward writes this layer's gradients plus <see cref="LayerPass.Addends"/> itself (see there). Layers
    /// that do not are handled by the caller, which adds the addends to their gradients afterwards.</summary>
    public virtual bool AddsAddends => false;

    public abstract void Backward(ref LayerPass pass);

    /// <summary>Folds the slice statistics (already averaged over slices) into the buffers, after an optimizer step.</summary>
    public virtual void UpdateBuffers(Span<float> buffers, ReadOnlySpan<float> meanStatistics)
    {
    }
}

/// <summary>Everything one layer sees in one pass over a slice. Spans are this layer's windows.</summary>
public ref struct LayerPass
{
    public int Rows;
    public bool Training;
    public ReadOnlySpan<float> Parameters;
    public ReadOnlySpan<float> Buffers;
    /// <summary>Backward writes this layer's parameter gradient sums here (overwrites).</summary>
    public Span<float> Gradients;
    /// <summary>
    /// Sums of the canonical gradient tree that this slice's result completes (left siblings, lowest level first), as
    /// whole result vectors; this layer's window starts at <see cref="GradientOffset"/>. A layer whose
    /// <see cref="Layer.AddsAddends"/> is true writes add[K-1] + (… + (add[0] + its gradient)) instead of its gradient.
    /// </summary>
    public ReadOnlySpan<float[]> Addends;
    public int GradientOffset;
    /// <summary>Training forward writes this layer's per-slice statistics here (overwrites).</summary>
    public Span<float> Statistics;
    public ReadOnlySpan<float> Input;
    public Span<float> Output;
    public ReadOnlySpan<float> OutputGradient;
    /// <summary>Empty when nobody needs the gradient with respect to the input (the first layer).</summary>
    public Span<float> InputGradient;
    public Span<float> Scratch;
    /// <summary>What <see cref="Layer.Prepare"/> derived from this step's parameters; empty: derive it here.</summary>
    public ReadOnlySpan<float> Prepared;
    /// <summary>Keys for randomness: the run seed, the global step, each row's sample index and this layer's index.</summary>
    public ulong Seed;
    public long Step;
    public ReadOnlySpan<int> SampleIndices;
    public int LayerIndex;
}
