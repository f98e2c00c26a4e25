using DistributedBackprop.Core.Optim;
using Xunit;

namespace DistributedBackprop.Core.Tests.Optim;

public sealed class LearningRateScheduleTests
{
    [Fact]
    public void Warmup_ramps_linearly_from_rate_over_warmup_to_the_full_rate()
    {
        var schedule = new LearningRateSchedule(0.4f, WarmupSteps: 4, "none", 0, 0.1f, TotalSteps: 100);

        Assert.Equal(0.1f, schedule.At(0), 1e-7f);
        Assert.Equal(0.2f, schedule.At(1), 1e-7f);
        Assert.Equal(0.3f, schedule.At(2), 1e-7f);
        Assert.Equal(0.4f, schedule.At(3), 1e-7f);
        Assert.Equal(0.4f, schedule.At(4));
        Assert.Equal(0.4f, schedule.At(99));
    }

    [Fact]
    public void Constant_schedule_without_warmup_is_the_base_rate()
    {
        var schedule = new LearningRateSchedule(0.05f, 0, "none", 0, 0.1f, 10);

        Assert.All(Enumerable.Range(0, 10), s => Assert.Equal(0.05f, schedule.At(s)));
    }

    [Fact]
    public void Step_decay_multiplies_by_the_factor_every_n_steps_after_warmup()
    {
        var schedule = new LearningRateSchedule(1f, WarmupSteps: 2, "step", DecayEvery: 3, DecayFactor: 0.5f, TotalSteps: 20);

        float[] expected = [0.5f, 1f, /* after warm-up */ 1f, 1f, 1f, 0.5f, 0.5f, 0.5f, 0.25f, 0.25f, 0.25f, 0.125f];
        for (var s = 0; s < expected.Length; s++)
        {
            Assert.Equal(expected[s], schedule.At(s), 1e-7f);
        }
    }

    [Fact]
    public void Cosine_decay_starts_at_the_base_rate_halves_midway_and_ends_at_zero()
    {
        var schedule = new LearningRateSchedule(0.2f, WarmupSteps: 10, "cosine", 0, 0.1f, TotalSteps: 110);

        Assert.Equal(0.02f, schedule.At(0), 1e-7f);
        Assert.Equal(0.2f, schedule.At(10), 1e-7f);
        Assert.Equal(0.1f, schedule.At(60), 1e-7f);
        Assert.Equal(0f, schedule.At(110), 1e-7f);
        Assert.Equal(0f, schedule.At(500), 1e-7f);
        for (var s = 11; s <= 110; s++)
        {
            Assert.True(schedule.At(s) <= schedule.At(s - 1), $"cosine rose at step {s}");
        }
    }
}
