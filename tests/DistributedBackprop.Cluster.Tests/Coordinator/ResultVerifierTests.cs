using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

public sealed class ResultVerifierTests
{
    private static readonly DateTime T0 = new(2026, 12, 7, 12, 0, 0, DateTimeKind.Utc);
    private static readonly TreeNode Pair = new(1, 0);

    [Fact]
    public void A_copy_with_the_same_bits_agrees_and_one_with_other_bits_does_not()
    {
        var verifier = new ResultVerifier(TimeSpan.FromSeconds(30));
        verifier.Remember(5, Pair, "worker-0", F([1f, 2f, 3f]), T0);

        Assert.Equal(ResultVerifier.Comparison.Same, verifier.Compare(5, Pair, "worker-1", F([1f, 2f, 3f]), out var first));
        Assert.Equal("worker-0", first);
        Assert.Equal(ResultVerifier.Comparison.Different, verifier.Compare(5, Pair, "worker-2", F([1f, 2f, 3.0001f]), out _));
        // -0 and +0 are equal numbers but not the same bits: a corrupt worker cannot hide behind them.
        verifier.Remember(6, Pair, "worker-0", F([0f]), T0);
        Assert.Equal(ResultVerifier.Comparison.Different, verifier.Compare(6, Pair, "worker-1", F([-0f]), out _));
    }

    [Fact]
    public void Nothing_is_compared_without_a_kept_result_or_with_the_same_worker()
    {
        var verifier = new ResultVerifier(TimeSpan.FromSeconds(30));
        Assert.Equal(ResultVerifier.Comparison.Nothing, verifier.Compare(5, Pair, "worker-1", F([1f]), out _));
        verifier.Remember(5, Pair, "worker-1", F([1f]), T0);
        Assert.Equal(ResultVerifier.Comparison.Nothing, verifier.Compare(5, Pair, "worker-1", F([2f]), out _));
        Assert.Equal(ResultVerifier.Comparison.Nothing, verifier.Compare(5, new TreeNode(0, 0), "worker-2", F([1f]), out _));
        Assert.Equal(ResultVerifier.Comparison.Nothing, verifier.Compare(4, Pair, "worker-2", F([1f]), out _));
    }

    [Fact]
    public void Fingerprints_expire_by_time_not_by_steps()
    {
        var verifier = new ResultVerifier(TimeSpan.FromSeconds(30));
        verifier.Remember(5, Pair, "worker-0", F([1f]), T0);
        verifier.Remember(5000, Pair, "worker-0", F([1f]), T0.AddSeconds(20));
        verifier.Expire(T0.AddSeconds(29));
        Assert.Equal(2, verifier.Kept);
        verifier.Expire(T0.AddSeconds(31));
        Assert.Equal(1, verifier.Kept);
        Assert.Equal(ResultVerifier.Comparison.Nothing, verifier.Compare(5, Pair, "worker-1", F([1f]), out _));
    }

    [Fact]
    public void Strikes_count_per_worker()
    {
        var verifier = new ResultVerifier(TimeSpan.FromSeconds(30));
        Assert.Equal(1, verifier.Strike("worker-0"));
        Assert.Equal(1, verifier.Strike("worker-1"));
        Assert.Equal(2, verifier.Strike("worker-0"));
    }

    private static byte[] F(float[] sum) => ResultVerifier.Fingerprint(sum);
}
