using System.Runtime.InteropServices;
using System.Security.Cryptography;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// What the coordinator remembers to judge results: the fingerprint of each result whose slices also went out as a
/// speculative copy (so the copy, or a late original, can be compared with the one used), and how many non-finite
/// results each worker has returned. Plain state, no actor: the coordinator asks, it decides.
/// </summary>
public sealed class ResultVerifier(TimeSpan keep)
{
    private readonly Dictionary<(long Step, TreeNode Node), (string Worker, byte[] Hash, DateTime Taken)> _fingerprints = [];
    private readonly Dictionary<string, int> _strikes = [];

    /// <summary>How the second result for the same slices compared with the first.</summary>
    public enum Comparison
    {
        /// <summary>No first result to compare with (none kept, or from the same worker).</summary>
        Nothing,
        /// <summary>The same bits.</summary>
        Same,
        /// <summary>Different bits: one of the two workers is corrupt.</summary>
        Different,
    }

    /// <summary>Fingerprints held now (tests).</summary>
    public int Kept => _fingerprints.Count;

    /// <summary>Keeps <paramref name="sum"/>'s fingerprint as the result used for these slices of this step.</summary>
    public void Remember(long step, TreeNode node, string worker, byte[] fingerprint, DateTime now) =>
        _fingerprints[(step, node)] = (worker, fingerprint, now);

    /// <summary>
    /// Drops fingerprints older than the keep time: by time, not steps, since a straggler may answer many steps late (a
    /// step of a small model takes well under a millisecond).
    /// </summary>
    public void Expire(DateTime now)
    {
        if (_fingerprints.Count == 0)
        {
            return; // the usual case, every step: nothing to allocate
        }
        foreach (var old in _fingerprints.Where(f => now - f.Value.Taken > keep).Select(f => f.Key).ToList())
        {
            _fingerprints.Remove(old);
        }
    }

    /// <summary>Compares another worker's result for the same slices with the one kept; <paramref name="first"/> names its worker.</summary>
    public Comparison Compare(long step, TreeNode node, string worker, byte[] fingerprint, out string? first)
    {
        first = null;
        if (!_fingerprints.TryGetValue((step, node), out var kept) || kept.Worker == worker)
        {
            return Comparison.Nothing;
        }
        first = kept.Worker;
        return fingerprint.AsSpan().SequenceEqual(kept.Hash) ? Comparison.Same : Comparison.Different;
    }

    /// <summary>Counts a non-finite result against <paramref name="worker"/>; returns its count so far.</summary>
    public int Strike(string worker) => _strikes[worker] = _strikes.GetValueOrDefault(worker) + 1;

    /// <summary>Bytes of a fingerprint (SHA-256).</summary>
    public const int FingerprintBytes = 32;

    /// <summary>The fingerprint of a sum: the SHA-256 of its bytes.</summary>
    public static byte[] Fingerprint(float[] sum) => SHA256.HashData(MemoryMarshal.AsBytes(sum.AsSpan()));
}
