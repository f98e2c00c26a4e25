using DistributedBackprop.Core.Numerics;

namespace DistributedBackprop.Core.Training;

/// <summary>
/// Which samples each slice of each step covers. The epoch's order is Shuffle(seed, epoch) over the training indices;
/// step t of an epoch covers B consecutive permuted indices and slice s of it the fixed run of m = B / S starting at
/// t·B + s·m. A partial last batch is dropped (as DataLoader's drop_last). The plan depends on the seed, the sample count
/// and (B, S) only — never on how many workers there are.
/// </summary>
public sealed class SlicePlan
{
    private sealed record CachedOrder(int Epoch, int[] Order);

    private CachedOrder? _cached;

    public SlicePlan(ulong seed, int sampleCount, int globalBatch, int sliceCount)
    {
        if (globalBatch <= 0 || sliceCount <= 0 || globalBatch % sliceCount != 0)
        {
            throw new DistbpInputException(
                "Slices", $"{sliceCount} slices do not divide the global batch of {globalBatch}; choose a divisor of the batch.");
        }
        if (globalBatch > sampleCount)
        {
            throw new DistbpInputException(
                "Batch", $"{globalBatch} is larger than the {sampleCount} training samples; choose a smaller batch.");
        }
        Seed = seed;
        SampleCount = sampleCount;
        GlobalBatch = globalBatch;
        SliceCount = sliceCount;
    }

    public ulong Seed { get; }
    public int SampleCount { get; }
    public int GlobalBatch { get; }
    public int SliceCount { get; }
    public int SliceSize => GlobalBatch / SliceCount;
    public int StepsPerEpoch => SampleCount / GlobalBatch;

    public (int Epoch, int StepInEpoch) Locate(long globalStep) =>
        ((int)(globalStep / StepsPerEpoch), (int)(globalStep % StepsPerEpoch));

    /// <summary>The sample indices of one slice of a global step.</summary>
    public ReadOnlySpan<int> Slice(long globalStep, int slice)
    {
        if ((uint)slice >= (uint)SliceCount)
        {
            throw new ArgumentOutOfRangeException(nameof(slice));
        }
        var (epoch, stepInEpoch) = Locate(globalStep);
        return Permutation(epoch).AsSpan(stepInEpoch * GlobalBatch + slice * SliceSize, SliceSize);
    }

    /// <summary>The epoch's order (cached; safe to call from several threads).</summary>
    public int[] Permutation(int epoch)
    {
        var cached = Volatile.Read(ref _cached);
        if (cached is null || cached.Epoch != epoch)
        {
            cached = new CachedOrder(epoch, Shuffle(Seed, epoch, SampleCount));
            Volatile.Write(ref _cached, cached);
        }
        return cached.Order;
    }

    /// <summary>Fisher–Yates over 0..count-1 driven by a generator keyed by (seed, epoch).</summary>
    public static int[] Shuffle(ulong seed, int epoch, int count)
    {
        var order = new int[count];
        for (var i = 0; i < count; i++)
        {
            order[i] = i;
        }
        var random = new SplitMix64(KeyedRandom.Key(seed, 0x5EED_5A1CE, (ulong)epoch));
        for (var i = count - 1; i > 0; i--)
        {
            var j = random.NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }
}
