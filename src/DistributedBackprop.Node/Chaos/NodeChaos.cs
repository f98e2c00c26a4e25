using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Node.Chaos;

/// <summary>For simulate --chaos: the coordinator's node prints "step N" after each step, so the launcher knows when
/// (and on which node) to inject a fault.</summary>
public sealed class StepReporter(ITrainingObserver inner) : ITrainingObserver
{
    public static ITrainingObserver Wrap(ITrainingObserver inner, bool report) => report ? new StepReporter(inner) : inner;

    public void OnStep(StepReport report, int epoch, int stepInEpoch, int stepsPerEpoch, double samplesPerSecond)
    {
        Console.Out.WriteLine($"step {report.Step}");
        inner.OnStep(report, epoch, stepInEpoch, stepsPerEpoch, samplesPerSecond);
    }

    public void OnEpoch(int epoch, double trainLoss, Evaluation test) => inner.OnEpoch(epoch, trainLoss, test);

    public void OnWarning(Core.Health.HealthWarning warning) => inner.OnWarning(warning);
}

/// <summary>
/// For simulate --chaos: fault commands read line by line from standard input — "nan STEP" (a NaN gradient once at
/// STEP), "slow MILLISECONDS" (delay every reply from now on), "partition MILLISECONDS" (cut this node off).
/// </summary>
public static class ChaosControl
{
    public static void Listen(FaultInjector faults, TextReader input, Action<TimeSpan>? partition = null) =>
        _ = Task.Run(async () =>
        {
            while (await input.ReadLineAsync() is { } line)
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length != 2 || !long.TryParse(parts[1], out var value))
                {
                    continue;
                }
                switch (parts[0])
                {
                    case "nan":
                        faults.Faults = faults.Faults with { NanAtStep = value };
                        break;
                    case "slow":
                        faults.Faults = faults.Faults with { SlowFromStep = 0, SlowBy = TimeSpan.FromMilliseconds(value) };
                        break;
                    case "partition":
                        partition?.Invoke(TimeSpan.FromMilliseconds(value));
                        break;
                }
            }
        });
}
