using DistributedBackprop.Cluster.Coordinator;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Protocol;

/// <summary>Who gets which slices: a worker that went silent is left out of the next steps for a grace period.</summary>
public sealed class WorkAssignmentTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    private static WorkAssignment ThreeWorkers() => new(sliceCount: 8, ["worker-0", "worker-1", "worker-2"]);

    private static void AllAnswerExcept(WorkAssignment work, params string[] silent)
    {
        foreach (var worker in work.Current.Select(a => a.Worker).Distinct().Where(w => !silent.Contains(w)))
        {
            work.Answered(worker);
        }
    }

    [Fact]
    public void Every_live_worker_gets_a_contiguous_run_and_the_runs_cover_every_slice()
    {
        var plan = ThreeWorkers().BeginStep(T0);

        Assert.Equal(["worker-0", "worker-1", "worker-2"], plan.Select(a => a.Worker));
        Assert.Equal(Enumerable.Range(0, 8), plan.SelectMany(a => Enumerable.Range(a.First, a.Count)));
    }

    [Fact]
    public void A_worker_that_did_not_answer_its_step_is_left_out_of_the_next()
    {
        var work = ThreeWorkers();
        work.BeginStep(T0);
        AllAnswerExcept(work, "worker-2");

        var next = work.BeginStep(T0.AddMilliseconds(30));

        Assert.Equal(["worker-2"], work.Silent);
        Assert.Equal(["worker-0", "worker-1"], next.Select(a => a.Worker));
        Assert.Equal(Enumerable.Range(0, 8), next.SelectMany(a => Enumerable.Range(a.First, a.Count)));
    }

    [Fact]
    public void A_late_result_from_a_silent_worker_does_not_bring_it_back_before_the_grace_period()
    {
        var work = ThreeWorkers();
        work.BeginStep(T0);
        AllAnswerExcept(work, "worker-2");
        work.BeginStep(T0.AddMilliseconds(30));
        AllAnswerExcept(work);

        work.Answered("worker-2"); // its stale result for the first step arrives: it is slow, not gone
        var next = work.BeginStep(T0.AddMilliseconds(60));

        Assert.Equal(["worker-2"], work.Silent);
        Assert.Equal(["worker-0", "worker-1"], next.Select(a => a.Worker));
        AllAnswerExcept(work);
        var later = work.BeginStep(T0 + WorkAssignment.SilenceGrace + TimeSpan.FromMilliseconds(30));
        Assert.Empty(work.Silent);
        Assert.Contains(later, a => a.Worker == "worker-2");
    }

    [Fact]
    public void A_silent_worker_is_tried_again_after_the_grace_period()
    {
        var work = ThreeWorkers();
        work.BeginStep(T0);
        AllAnswerExcept(work, "worker-2");
        work.BeginStep(T0.AddMilliseconds(30));
        AllAnswerExcept(work);

        var later = work.BeginStep(T0 + WorkAssignment.SilenceGrace + TimeSpan.FromMilliseconds(30));

        Assert.Contains(later, a => a.Worker == "worker-2");
    }

    [Fact]
    public void A_restarted_worker_is_no_longer_silent()
    {
        var work = ThreeWorkers();
        work.BeginStep(T0);
        AllAnswerExcept(work, "worker-2");
        work.BeginStep(T0.AddMilliseconds(30));
        work.MarkDead("worker-2");

        work.MarkAlive("worker-2");

        Assert.Empty(work.Silent);
        Assert.Contains("worker-2", work.Ready);
    }

    [Fact]
    public void When_every_worker_is_silent_all_live_ones_are_used()
    {
        var work = ThreeWorkers();
        work.BeginStep(T0);

        var next = work.BeginStep(T0.AddMilliseconds(30));

        Assert.Equal(3, work.Silent.Count);
        Assert.Equal(3, next.Count);
    }

    [Fact]
    public void A_slow_run_is_copied_to_a_worker_that_has_finished()
    {
        var work = ThreeWorkers();
        var plan = work.BeginStep(T0);
        var covered = new HashSet<int>(Enumerable.Range(plan[0].First, plan[0].Count)); // only worker-0 answered

        var copies = work.Speculate(covered.Contains);

        Assert.All(copies, c => Assert.Equal("worker-0", c.Worker));
        Assert.Equal(plan.Skip(1).Select(a => (a.First, a.End)), copies.Select(c => (c.First, c.End)));
    }

    [Fact]
    public void When_no_worker_is_free_a_busy_one_that_does_not_hold_the_run_gets_it()
    {
        // Both workers hold uncovered work (say, one order was lost in a partition): nobody is idle, yet each run must
        // be ordered again somewhere or the step waits for ever.
        var work = new WorkAssignment(sliceCount: 8, ["worker-0", "worker-1"]);
        work.BeginStep(T0);

        var copies = work.Speculate(_ => false);

        Assert.Equal([("worker-1", 0), ("worker-0", 4)], copies.Select(c => (c.Worker, c.First)));
    }

    [Fact]
    public void The_last_live_worker_is_asked_again_for_what_it_has_not_answered()
    {
        var work = new WorkAssignment(sliceCount: 8, ["worker-0", "worker-1"]);
        work.BeginStep(T0);
        work.MarkDead("worker-1");

        var copies = work.Speculate(_ => false);

        Assert.Equal([("worker-0", 0, 4), ("worker-0", 4, 4)], copies.Select(c => (c.Worker, c.First, c.Count)));
    }

    [Fact]
    public void Chunks_are_spread_over_ready_workers_in_contiguous_runs()
    {
        var work = ThreeWorkers();
        Assert.Equal([("worker-0", 0, 2), ("worker-1", 2, 2), ("worker-2", 4, 3)], work.Spread(Enumerable.Range(0, 7).ToList()));
        work.MarkDead("worker-1");
        // Only the missing chunks are re-sent: a share with a gap goes out as one run per consecutive stretch.
        Assert.Equal([("worker-0", 1, 1), ("worker-2", 3, 1), ("worker-2", 6, 1)], work.Spread([1, 3, 6]));
    }

    [Fact]
    public void Nothing_is_spread_when_no_worker_is_alive()
    {
        var work = ThreeWorkers();
        foreach (var worker in (string[])["worker-0", "worker-1", "worker-2"])
        {
            work.MarkDead(worker);
        }
        Assert.Empty(work.Spread([0, 1, 2]));
    }
}
