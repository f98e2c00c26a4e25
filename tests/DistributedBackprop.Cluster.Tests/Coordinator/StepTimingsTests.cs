using DistributedBackprop.Cluster.Coordinator;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

public sealed class StepTimingsTests
{
    private static readonly CoordinatorTuning Tuning = new()
    {
        ResendAfter = TimeSpan.FromSeconds(2),
        StragglerFactor = 3,
        MinStragglerDelay = TimeSpan.FromMilliseconds(10),
    };

    /// <summary>A clock that moves only when the test moves it.</summary>
    private sealed class TestClock : TimeProvider
    {
        private long _ticks;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => _ticks;
        public void Advance(double seconds) => _ticks += (long)(seconds * TimeSpan.TicksPerSecond);
    }

    private static void Step(StepTimings timings, TestClock clock, double seconds, bool faultFree = true)
    {
        timings.BeginStep();
        clock.Advance(seconds);
        timings.EndStep(0, faultFree);
    }

    [Fact]
    public void Before_any_step_the_straggler_deadline_is_the_resend_delay()
    {
        Assert.Equal(Tuning.ResendAfter, new StepTimings().StragglerDelay(Tuning));
    }

    [Fact]
    public void The_straggler_deadline_is_the_factor_times_the_median_of_fault_free_steps_and_never_below_the_minimum()
    {
        var clock = new TestClock();
        var timings = new StepTimings(clock);
        Step(timings, clock, 0.001);
        Assert.Equal(Tuning.MinStragglerDelay, timings.StragglerDelay(Tuning));
        Step(timings, clock, 0.020);
        Step(timings, clock, 0.030);
        Assert.Equal(TimeSpan.FromSeconds(0.060), timings.StragglerDelay(Tuning));
        // A step that waited for a fault does not move the deadline, however long it took.
        Step(timings, clock, 5, faultFree: false);
        Step(timings, clock, 7, faultFree: false);
        Assert.Equal(TimeSpan.FromSeconds(0.060), timings.StragglerDelay(Tuning));
        Assert.Equal(5, timings.StepsRun);
    }

    [Fact]
    public void The_median_is_over_the_recent_steps_only()
    {
        var clock = new TestClock();
        var timings = new StepTimings(clock);
        for (var k = 0; k < StepTimings.RecentSteps; k++)
        {
            Step(timings, clock, 1);
        }
        for (var k = 0; k < StepTimings.RecentSteps / 2 + 1; k++)
        {
            Step(timings, clock, 0.1);
        }
        Assert.Equal(TimeSpan.FromSeconds(0.3), timings.StragglerDelay(Tuning));
    }

    [Fact]
    public void Communication_is_what_is_left_of_the_wall_time_after_compute_and_the_coordinators_work()
    {
        var clock = new TestClock();
        var timings = new StepTimings(clock);
        timings.BeginStep();
        timings.Computed(0.001);
        timings.Computed(0.004);
        timings.Computed(0.002);
        Assert.Equal(0.004, timings.StepCompute);
        clock.Advance(0.010);
        Assert.Equal(0.010, timings.EndStep(0.003, faultFree: true), 12);
        timings.Moved("node-a", "node-b", 1000);
        timings.Moved("node-a", "node-c", 500);

        var json = timings.ToJson();
        Assert.Equal(0.010, (double)json["total"]!, 12);
        Assert.Equal(0.004, (double)json["compute"]!, 12);
        Assert.Equal(0.003, (double)json["coordinator"]!, 12);
        Assert.Equal(0.003, (double)json["communication"]!, 12);
        Assert.Equal(1500, timings.BytesPerStep);
        // The coordinator's node moved every byte; each other node what it exchanged with it.
        Assert.Equal(1500, timings.BusiestNodeBytesPerStep);
        Assert.Equal("""{"node-a":1500,"node-b":1000,"node-c":500}""", timings.BytesPerNodeToJson().ToJsonString());
        Assert.Equal(64 / 0.010, timings.SamplesPerSecond(64), 6);
    }
}
