using DistributedBackprop.Core.Tests.Checkpoints;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Core.Tests.Training;

/// <summary>The cadence both the single-process trainer and the coordinator follow.</summary>
public sealed class RunScheduleTests
{
    // 64 training rows, batch 16: four steps an epoch.
    private static RunSchedule Schedule(int checkpointEvery) =>
        new(CheckpointFixture.Setup(CheckpointFixture.Options with { CheckpointEvery = checkpointEvery }));

    [Fact]
    public void The_last_step_of_each_epoch_ends_it()
    {
        var schedule = Schedule(0);
        Assert.Equal([false, false, false, true], Enumerable.Range(0, 4).Select(schedule.EndsEpoch));
    }

    [Fact]
    public void Checkpoints_fall_every_k_steps_or_at_epoch_ends_when_k_is_0()
    {
        var every3 = Schedule(3);
        Assert.Equal([3L, 6L], Enumerable.Range(1, 8).Select(s => (long)s).Where(s => every3.CheckpointDue(s, endsEpoch: s % 4 == 0)));
        var epochEnds = Schedule(0);
        Assert.Equal([4L, 8L], Enumerable.Range(1, 8).Select(s => (long)s).Where(s => epochEnds.CheckpointDue(s, endsEpoch: s % 4 == 0)));
    }
}
