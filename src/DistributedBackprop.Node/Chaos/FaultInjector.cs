using DistributedBackprop.Cluster.Workers;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Node.Chaos;

/// <summary>Faults a node injects into its own work when told to (distbp simulate --chaos, the fault tests).</summary>
public sealed record FaultInjection
{
    /// <summary>Return a NaN gradient once, for the first slices computed at this step.</summary>
    public long? NanAtStep { get; init; }
    /// <summary>Delay every reply by this much from <see cref="SlowFromStep"/> on.</summary>
    public TimeSpan SlowBy { get; init; }
    public long SlowFromStep { get; init; } = long.MaxValue;
    /// <summary>Return subtly wrong (but finite) sums from this step on: a corrupt worker.</summary>
    public long CorruptFromStep { get; init; } = long.MaxValue;
}

/// <summary>
/// Applies a node's <see cref="FaultInjection"/> to its workers' sums through <see cref="IComputedSlicesHook"/>: chaos
/// testing reaches the workers through this seam, not through code of their own. The faults may change while the node
/// runs (simulate's chaos commands arrive on standard input).
/// </summary>
public sealed class FaultInjector(FaultInjection? faults = null) : IComputedSlicesHook
{
    private FaultInjection _faults = faults ?? new FaultInjection();
    private int _nanInjected;

    /// <summary>The faults in force.</summary>
    public FaultInjection Faults
    {
        get => Volatile.Read(ref _faults);
        set => Volatile.Write(ref _faults, value);
    }

    /// <summary>Tells what was injected (the node's log).</summary>
    public Action<string>? Report { get; init; }

    public void OnComputed(long step, IReadOnlyList<KeyValuePair<TreeNode, float[]>> sums)
    {
        var faults = Faults;
        // The NaN fires once per process, whichever worker reaches that step first.
        if (faults.NanAtStep == step && sums.Count > 0 && Interlocked.Exchange(ref _nanInjected, 1) == 0)
        {
            Report?.Invoke($"chaos: injecting a NaN gradient at step {step}");
            sums[0].Value[0] = float.NaN;
        }
        if (step >= faults.CorruptFromStep)
        {
            foreach (var sum in sums)
            {
                sum.Value[0] += 1e-3f;
            }
        }
        if (step >= faults.SlowFromStep && faults.SlowBy > TimeSpan.Zero)
        {
            Thread.Sleep(faults.SlowBy); // a deliberately slow worker
        }
    }
}
