using DistributedBackprop.Core.Layers;
using DistributedBackprop.Core.Losses;
using DistributedBackprop.Core.Numerics;

namespace DistributedBackprop.Core.Model;

/// <summary>
/// A layer stack over flat vectors. Parameters, buffers and slice statistics of all layers are laid end to end, so the
/// optimizer, clipping, checkpoints and the wire each see one vector.
/// A slice result vector is [parameter gradient sums | statistics sums | loss sum, correct count]: everything a worker
/// returns is summed along the same canonical tree.
/// </summary>
public sealed class Network
{
    public Network(NetworkSpec spec)
    {
        Spec = spec;
        Layers = spec.BuildLayers();
        Loss = Losses.Loss.Create(spec.Loss);
        ParameterOffsets = new int[Layers.Count + 1];
        BufferOffsets = new int[Layers.Count + 1];
        StatisticsOffsets = new int[Layers.Count + 1];
        for (var l = 0; l < Layers.Count; l++)
        {
            ParameterOffsets[l + 1] = ParameterOffsets[l] + Layers[l].ParameterCount;
            BufferOffsets[l + 1] = BufferOffsets[l] + Layers[l].BufferCount;
            StatisticsOffsets[l + 1] = StatisticsOffsets[l] + Layers[l].StatisticsCount;
        }
    }

    public NetworkSpec Spec { get; }
    public IReadOnlyList<Layer> Layers { get; }
    public Loss Loss { get; }
    public int[] ParameterOffsets { get; }
    public int[] BufferOffsets { get; }
    public int[] StatisticsOffsets { get; }

    public int InputSize => Layers[0].InputSize;
    public int OutputSize => Layers[^1].OutputSize;
    public int ParameterCount => ParameterOffsets[^1];
    public int BufferCount => BufferOffsets[^1];
    public int StatisticsCount => StatisticsOffsets[^1];

    /// <summary>Length of a slice result: gradients, statistics, loss sum, correct count.</summary>
    public int ResultLength => ParameterCount + StatisticsCount + 2;
    public int LossSumIndex => ParameterCount + StatisticsCount;
    public int CorrectIndex => ParameterCount + StatisticsCount + 1;

    public int MaxWidth => Layers.Max(l => Math.Max(l.InputSize, l.OutputSize));

    public Span<float> LayerParameters(Span<float> all, int layer) =>
        all[ParameterOffsets[layer]..ParameterOffsets[layer + 1]];

    public Span<float> LayerBuffers(Span<float> all, int layer) =>
        all[BufferOffsets[layer]..BufferOffsets[layer + 1]];

    /// <summary>Fresh weights from the seed: each layer initialised in order from one generator.</summary>
    public ModelWeights Initialize(ulong seed)
    {
        var weights = new ModelWeights(new float[ParameterCount], new float[BufferCount]);
        var random = new SplitMix64(KeyedRandom.Key(seed, 0x1417_1A11));
        for (var l = 0; l < Layers.Count; l++)
        {
            Layers[l].Initialize(LayerParameters(weights.Parameters, l), LayerBuffers(weights.Buffers, l), ref random);
        }
        return weights;
    }
}

/// <summary>The state that defines a trained network: trainable parameters and non-trainable buffers.</summary>
public sealed record ModelWeights(float[] Parameters, float[] Buffers)
{
    public ModelWeights Copy() => new((float[])Parameters.Clone(), (float[])Buffers.Clone());

    /// <summary>SHA-256 of the parameters then the buffers as little-endian float32 — the test suite's oracle.</summary>
    public string Sha256()
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(Parameters.AsSpan()));
        hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(Buffers.AsSpan()));
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
