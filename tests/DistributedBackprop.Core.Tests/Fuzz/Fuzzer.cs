using System.Buffers.Binary;
using System.Diagnostics;
using CsCheck;

namespace DistributedBackprop.Core.Tests.Fuzz;

/// <summary>
/// Deterministic mutation fuzzing of a decoder: valid inputs (the seeds) mutated by CsCheck generators drawn from a PCG
/// with a fixed seed, so every run tries the same cases and a failure names the case that reproduces it. A case fails
/// when the decoder throws anything but its input error, takes over <see cref="MaxCallTime"/>, or allocates far more
/// than its input's size. DISTBP_FUZZ_CASES raises the number of cases and DISTBP_FUZZ_SEED picks another sequence
/// (bench/fuzz.sh); CI runs the defaults. (Shared with the cluster tests.)
/// </summary>
public static class Fuzzer
{
    public static readonly ulong Seed =
        ulong.TryParse(Environment.GetEnvironmentVariable("DISTBP_FUZZ_SEED"), out var seed) ? seed : 20261207;
    public static readonly TimeSpan MaxCallTime = TimeSpan.FromSeconds(1);

    /// <summary>Cases per target: DISTBP_FUZZ_CASES, or <paramref name="ciDefault"/>.</summary>
    public static int Cases(int ciDefault) =>
        int.TryParse(Environment.GetEnvironmentVariable("DISTBP_FUZZ_CASES"), out var cases) && cases > 0 ? cases : ciDefault;

    /// <summary>Values that break size arithmetic, written over a field as int32 (little-endian).</summary>
    private static readonly int[] Interesting = [0, 1, -1, 2, 255, 256, 65535, 65536, int.MaxValue, int.MinValue, 1 << 28, 0x7FFFFFF0];

    private enum Mutation { FlipBit, SetByte, SetInt32, Delete, Duplicate, Truncate, Insert }

    private sealed record Edit(Mutation Kind, double At, int Value, int Length);

    private static readonly Gen<Edit> Edits = Gen.Select(
        Gen.Enum<Mutation>(), Gen.Double[0, 1], Gen.Int, Gen.Int[1, 64], (kind, at, value, length) => new Edit(kind, at, value, length));

    /// <summary>One of the seeds with one to four edits applied.</summary>
    public static Gen<byte[]> Mutations(IReadOnlyList<byte[]> seeds) =>
        Gen.Select(Gen.Int[0, seeds.Count - 1], Edits.Array[1, 4], (index, edits) => edits.Aggregate(seeds[index], Apply));

    private static byte[] Apply(byte[] input, Edit edit)
    {
        var at = (int)(edit.At * input.Length);
        var bytes = input.ToList();
        switch (edit.Kind)
        {
            case Mutation.FlipBit when input.Length > 0:
                bytes[Math.Min(at, input.Length - 1)] ^= (byte)(1 << (edit.Value & 7));
                break;
            case Mutation.SetByte when input.Length > 0:
                bytes[Math.Min(at, input.Length - 1)] = (byte)(edit.Value & 3) switch { 0 => 0, 1 => 0xFF, 2 => 0x7F, _ => 0x80 };
                break;
            case Mutation.SetInt32 when input.Length >= 4:
                var value = new byte[4];
                BinaryPrimitives.WriteInt32LittleEndian(value, Interesting[(uint)edit.Value % Interesting.Length]);
                var start = Math.Min(at, input.Length - 4);
                for (var i = 0; i < 4; i++)
                {
                    bytes[start + i] = value[i];
                }
                break;
            case Mutation.Delete:
                bytes.RemoveRange(at, Math.Min(edit.Length, input.Length - at));
                break;
            case Mutation.Duplicate:
                bytes.InsertRange(at, input.Skip(at).Take(edit.Length));
                break;
            case Mutation.Truncate:
                bytes.RemoveRange(at, input.Length - at);
                break;
            case Mutation.Insert:
                bytes.InsertRange(at, Enumerable.Range(0, edit.Length).Select(i => (byte)(edit.Value >> (i % 4 * 8))));
                break;
        }
        return bytes.ToArray();
    }

    /// <summary>
    /// Runs <paramref name="cases"/> mutations of <paramref name="seeds"/> through <paramref name="decode"/>; throws with
    /// the target, case number and input on the first failure. Returns how many cases ran and how many the decoder took.
    /// </summary>
    public static (int Cases, int Accepted) Run(string target, IReadOnlyList<byte[]> seeds, Action<byte[]> decode,
        Func<Exception, bool> isInputError, int cases)
    {
        var gen = Mutations(seeds);
        var pcg = new PCG(1, Seed);
        var accepted = 0;
        // Each seed once, untimed: the first call pays for compiling the decoder's path (and the crypto's set-up), which
        // is not what the time limit is about.
        foreach (var seed in seeds)
        {
            try
            {
                decode(seed);
            }
            catch (Exception e) when (isInputError(e))
            {
                // a seed may be refused (the handshake's are: no stranger knows the secret)
            }
        }
        for (var i = 0; i < cases; i++)
        {
            var input = gen.Generate(pcg, null, out _);
            var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            var clock = Stopwatch.StartNew();
            try
            {
                decode(input);
                accepted++;
            }
            catch (Exception e) when (isInputError(e))
            {
                // Refused as the input error: what a decoder should do with a bad input.
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"{target}, case {i} of seed {Seed}: {e.GetType().Name}: {e.Message}\n" +
                                                    $"input ({input.Length} bytes): {Hex(input)}", e);
            }
            var elapsed = clock.Elapsed;
            var allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
            if (elapsed > MaxCallTime)
            {
                throw new InvalidOperationException($"{target}, case {i}: took {elapsed.TotalSeconds:F1} s; input: {Hex(input)}");
            }
            if (allocated > 64L * input.Length + (4 << 20))
            {
                throw new InvalidOperationException(
                    $"{target}, case {i}: allocated {allocated:N0} bytes for a {input.Length}-byte input; input: {Hex(input)}");
            }
        }
        return (cases, accepted);
    }

    private static string Hex(byte[] input) => Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 512)))
                                               + (input.Length > 512 ? "…" : "");
}
