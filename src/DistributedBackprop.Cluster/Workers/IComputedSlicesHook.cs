using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Workers;

/// <summary>
/// Sees a worker's computed slice sums before they are sent: the one way in for chaos testing (a
/// fault injector, registered by <c>simulate --chaos</c> (Node/Chaos/FaultInjector.cs) and the fault tests). Production registers
/// none.
/// </summary>
public interface IComputedSlicesHook
{
    /// <summary>Called on the compute lane with the sums of step <paramref name="step"/>, which it may change.</summary>
    void OnComputed(long step, IReadOnlyList<KeyValuePair<TreeNode, float[]>> sums);
}
