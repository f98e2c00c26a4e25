using DistributedBackprop.Cluster.Coordinator;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

public sealed class PhaseWaitTests
{
    private static readonly DateTime T0 = new(2026, 12, 7, 12, 0, 0, DateTimeKind.Utc);
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public void A_wait_nudges_while_it_progresses_and_gives_up_after_the_bound_without_progress()
    {
        var wait = new PhaseWait();
        var nudges = 0;
        var phase = wait.Start(() => nudges++, () => "step 7", T0);

        Assert.Equal(PhaseWait.Verdict.Nudge, wait.OnTick(phase, T0.AddSeconds(59), Bound));
        wait.Nudge();
        Assert.Equal(1, nudges);
        wait.Progressed(T0.AddSeconds(50));
        Assert.Equal(PhaseWait.Verdict.Nudge, wait.OnTick(phase, T0.AddSeconds(100), Bound));
        Assert.Equal(PhaseWait.Verdict.GiveUp, wait.OnTick(phase, T0.AddSeconds(111), Bound));
        Assert.Equal("step 7", wait.Waiting);
    }

    [Fact]
    public void Ticks_of_an_ended_or_earlier_wait_are_stale()
    {
        var wait = new PhaseWait();
        Assert.Equal("the job", wait.Waiting);
        var first = wait.Start(() => { }, () => "statistics", T0);
        var second = wait.Start(() => { }, () => "step 0", T0);
        Assert.NotEqual(first, second);
        Assert.Equal(PhaseWait.Verdict.Stale, wait.OnTick(first, T0.AddHours(1), Bound));
        wait.Stop();
        Assert.Equal(PhaseWait.Verdict.Stale, wait.OnTick(second, T0.AddHours(1), Bound));
    }
}
