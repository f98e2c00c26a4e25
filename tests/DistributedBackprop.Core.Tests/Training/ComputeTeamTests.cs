using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Core.Tests.Training;

/// <summary>The worker's compute threads: every item of a run exactly once, whether the helpers spin or sleep.</summary>
public sealed class ComputeTeamTests
{
    [Fact]
    public void Every_item_runs_once_per_run_for_any_count_up_to_the_size()
    {
        using var team = new ComputeTeam(3);
        for (var round = 0; round < 200; round++)
        {
            var count = 1 + round % 3;
            var runs = new int[3];
            team.Run(count, i => Interlocked.Increment(ref runs[i]));
            Assert.Equal(Enumerable.Range(0, 3).Select(i => i < count ? 1 : 0), runs);
        }
    }

    [Fact]
    public void Helpers_that_went_to_sleep_between_runs_are_woken_for_the_next()
    {
        using var team = new ComputeTeam(2);
        var threads = new int[2];
        for (var round = 0; round < 5; round++)
        {
            // Longer than the helpers' spin (0.5 ms): they sleep, and the next run has to wake them.
            var idle = System.Diagnostics.Stopwatch.StartNew();
            while (idle.Elapsed < TimeSpan.FromMilliseconds(3))
            {
                Thread.Sleep(1);
            }
            var ran = new int[2];
            team.Run(2, i =>
            {
                ran[i]++;
                threads[i] = Environment.CurrentManagedThreadId;
            });
            Assert.Equal([1, 1], ran);
        }
        Assert.NotEqual(threads[0], threads[1]);
    }

    [Fact]
    public void A_failing_item_fails_the_run_and_the_team_goes_on()
    {
        using var team = new ComputeTeam(2);

        var failure = Assert.Throws<AggregateException>(() => team.Run(2, i =>
        {
            if (i == 1)
            {
                throw new InvalidOperationException("item 1");
            }
        }));

        Assert.Equal("item 1", failure.InnerException!.Message);
        var ran = new int[2];
        team.Run(2, i => ran[i]++);
        Assert.Equal([1, 1], ran);
    }
}
