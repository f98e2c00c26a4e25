namespace DistributedBackprop.Core.Numerics;

/// <summary>
/// Counter-based randomness: a value is a pure function of its key (seed, step, sample, layer, unit …),
/// so nothing random depends on which thread or worker computed it, or in what order.
/// </summary>
public static class KeyedRandom
{
    /// <summary>SplitMix64's finaliser: a bijective 64-bit mix.</summary>
    public static ulong Mix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    public static ulong Key(ulong a, ulong b) => Mix(Mix(a) ^ b);

    public static ulong Key(ulong a, ulong b, ulong c) => Mix(Key(a, b) ^ c);

    public static ulong Key(ulong a, ulong b, ulong c, ulong d) => Mix(Key(a, b, c) ^ d);

    /// <summary>A float uniform in [0, 1) from the top 24 bits of a hash.</summary>
    public static float Uniform(ulong hash) => (hash >> 40) * (1.0f / (1 << 24));
}

/// <summary>A sequential generator (SplitMix64) for weight initialisation and shuffles.</summary>
public struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        _state += 0x9E3779B97F4A7C15UL;
        var z = _state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>An integer in [0, bound) by multiply-shift (deterministic; the tiny bias is irrelevant here).</summary>
    public int NextInt(int bound) => (int)(((NextUInt64() >> 32) * (ulong)bound) >> 32);

    /// <summary>A float uniform in [-limit, limit).</summary>
    public float NextSymmetric(float limit) => (KeyedRandom.Uniform(NextUInt64()) * 2f - 1f) * limit;
}
