using Akka.Event;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Cluster.Tests.Protocol;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

/// <summary>One step of the protocol with three workers and eight slices, results played by the test.</summary>
public sealed class StepRoundTests
{
    private static readonly TrainingSetup Setup = TrainingSetup.Create(ProtocolSamples.TinyOptions(), ProtocolSamples.Subset(256, 64));
    private static readonly DateTime T0 = new(2026, 12, 7, 12, 0, 0, DateTimeKind.Utc);
    private const string Run = "run-1";

    private readonly WorkAssignment _work = new(8, ["worker-0", "worker-1", "worker-2"]);
    private readonly FaultLog _faults = new();
    private readonly BufferPool _pool = new(Setup.Network.ResultLength, 16);
    private readonly StepRound _round;

    public StepRoundTests() =>
        _round = new StepRound(Run, Setup, _work, new ResultVerifier(TimeSpan.FromSeconds(30)), _faults, _pool,
            NoLogger.Instance);

    private SliceResult Result(string worker, int level, int index, float value = 1f, long step = 0, string run = Run,
        int? length = null)
    {
        var sum = length is null ? _pool.Rent() : new float[length.Value];
        Array.Fill(sum, value);
        return new SliceResult(run, step, step, level, index, sum, worker, 0.001);
    }

    [Theory]
    [InlineData(0, 0, true)]
    [InlineData(0, 7, true)]
    [InlineData(3, 0, true)]
    [InlineData(1, 3, true)]
    [InlineData(0, 8, false)]
    [InlineData(1, 4, false)]
    [InlineData(4, 0, false)]
    [InlineData(-1, 0, false)]
    [InlineData(0, -1, false)]
    // (2, 2^30): its first slice, Index << Level, wraps to 0 in 32-bit.
    [InlineData(2, 1 << 30, false)]
    public void Only_a_subtree_of_this_runs_slice_tree_is_well_formed(int level, int index, bool wellFormed)
    {
        Assert.Equal(wellFormed, _round.IsWellFormed(Result("worker-0", level, index)));
    }

    [Fact]
    public void Results_of_the_plan_complete_the_tree_and_the_step_line_names_each_slices_worker()
    {
        var plan = _round.Begin(0, 0, T0, _ => null);
        Assert.Equal([("worker-0", 0, 2), ("worker-1", 2, 3), ("worker-2", 5, 3)], plan.Select(a => (a.Worker, a.First, a.Count)));

        Assert.Equal(new StepRound.Intake(true, false, [], null), _round.Take(Result("worker-0", 1, 0), T0));
        Assert.False(_round.Take(Result("worker-1", 1, 1), T0).Complete);
        Assert.False(_round.Take(Result("worker-1", 0, 4), T0).Complete);
        Assert.False(_round.Take(Result("worker-2", 0, 5), T0).Complete);
        Assert.True(_round.Take(Result("worker-2", 1, 3), T0).Complete);

        Assert.Equal(["worker-0", "worker-0", "worker-1", "worker-1", "worker-1", "worker-2", "worker-2", "worker-2"],
            _round.SliceWorkers);
        // Five subtree sums of ones.
        Assert.Equal(5f, _round.Tree.Root[0]);
        Assert.Empty(_faults.Records);
    }

    [Fact]
    public void Stale_malformed_and_duplicate_results_are_dropped_and_their_buffers_go_back_to_the_pool()
    {
        _round.Begin(0, 0, T0, _ => null);
        _round.Take(Result("worker-0", 1, 0), T0);

        var duplicate = Result("worker-0", 1, 0);
        var stale = Result("worker-1", 0, 2, step: 1);
        var free = _pool.FreeCount;
        Assert.Equal(StepRound.Intake.Dropped, _round.Take(duplicate, T0));
        Assert.Equal(StepRound.Intake.Dropped, _round.Take(stale, T0));
        Assert.Equal(free + 2, _pool.FreeCount);
        Assert.Equal(StepRound.Intake.Dropped, _round.Take(Result("worker-1", 0, 2, run: "other-run"), T0));
        Assert.Equal(StepRound.Intake.Dropped, _round.Take(Result("worker-1", 0, 2, length: 3), T0));
        Assert.Equal([true, true, false], Enumerable.Range(0, 3).Select(_round.Tree.IsCovered));
    }

    [Fact]
    public void A_copy_that_differs_from_the_result_used_is_recorded_as_a_mismatch()
    {
        _round.Begin(0, 0, T0, _ => null);
        _round.Take(Result("worker-0", 1, 0), T0);
        _round.Take(Result("worker-1", 0, 2), T0);
        // worker-2 is slow: its slices are copied to a worker that has finished, and the copy's result wins.
        var copies = _round.Speculate(T0.AddSeconds(1));
        Assert.All(copies, c => Assert.True(c.Copy));
        Assert.Equal(["worker-1", "worker-2"], _round.Stragglers);
        Assert.Contains(_faults.Records, f => f.Kind == "straggler");
        _round.Take(Result("worker-0", 0, 5, value: 2f), T0);
        // The straggler's late answer for the same subtree has other bits: one of the two workers is corrupt.
        _round.Take(Result("worker-2", 0, 5, value: 3f), T0);
        Assert.Contains(_faults.Records, f => f.Kind == "duplicate-mismatch" && f.Subject == "worker-0 vs worker-2");
    }

    [Fact]
    public void A_non_finite_sum_is_recomputed_elsewhere_and_a_worker_wrong_twice_is_excluded()
    {
        _round.Begin(0, 0, T0, _ => null);
        var first = _round.Take(Result("worker-0", 1, 0, value: float.NaN), T0);
        Assert.False(first.Taken);
        Assert.Null(first.ExcludedAfter);
        Assert.Equal([(0, 2)], first.Recompute.Select(a => (a.First, a.Count)));
        Assert.DoesNotContain("worker-0", first.Recompute.Select(a => a.Worker));

        _round.Begin(1, 1, T0.AddSeconds(1), _ => null);
        var second = _round.Take(Result("worker-0", 1, 0, value: float.NaN, step: 1), T0);
        Assert.Equal(2, second.ExcludedAfter);
        Assert.DoesNotContain("worker-0", _work.Alive);
        Assert.Equal(2, _faults.Records.Count(f => f.Kind == "non-finite-result"));
    }

    [Fact]
    public void The_same_non_finite_sum_from_a_second_worker_is_the_datas_and_is_taken()
    {
        _round.Begin(0, 0, T0, _ => null);
        var recompute = _round.Take(Result("worker-0", 1, 0, value: float.NaN), T0).Recompute.Single();
        var again = _round.Take(Result(recompute.Worker, 1, 0, value: float.NaN), T0);
        Assert.True(again.Taken);
    }

    [Fact]
    public void A_lost_workers_uncovered_slices_go_to_live_workers()
    {
        _round.Begin(0, 0, T0, _ => null);
        _round.Take(Result("worker-1", 0, 2), T0);
        _work.MarkDead("worker-1");
        var given = _round.WorkerLost("worker-1");
        Assert.Equal([(3, 2)], given.Select(a => (a.First, a.Count)));
        Assert.DoesNotContain("worker-1", given.Select(a => a.Worker));
    }

    [Fact]
    public void A_worker_silent_in_the_last_step_is_left_out_and_recorded_with_its_node()
    {
        _round.Begin(0, 0, T0, _ => null);
        _round.Take(Result("worker-0", 1, 0), T0);
        _round.Take(Result("worker-2", 0, 5), T0);
        var plan = _round.Begin(1, 1, T0.AddSeconds(1), worker => worker == "worker-1" ? "akka.tcp://distbp@10.0.0.2:4053" : null);
        Assert.DoesNotContain("worker-1", plan.Select(a => a.Worker));
        var silent = Assert.Single(_faults.Records);
        Assert.Equal("worker-silent", silent.Kind);
        Assert.Equal("worker-1@akka.tcp://distbp@10.0.0.2:4053", silent.Subject);
    }
}
