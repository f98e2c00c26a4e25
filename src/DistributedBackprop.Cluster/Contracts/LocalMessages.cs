using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Contracts;

// Messages that never leave their process (the node's entities and its cache, sharding's hand-off), and the marker
// types that key the actor registry. The remote ones are in Messages.cs.

/// <summary>
/// A local entity asks for the weights of a version, of the range plan <paramref name="Generation"/> (sharded
/// aggregation; 0 otherwise).
/// </summary>
public sealed record GetWeights(string RunId, long Version, long Generation = 0);

/// <summary>
/// The answer: the weights (shared read-only by the node's entities) and the node's setup — its data normalised with the
/// coordinator's normaliser, the network, the slice plan — which the cache builds once per normaliser. With sharded
/// aggregation, the plan of range owners the version came from: where the step's pieces go (null: to the coordinator).
/// </summary>
public sealed record WeightsAvailable(long Version, ModelWeights Weights, TrainingSetup Setup, RangePlan? Plan = null);

/// <summary>
/// The node's cache to the coordinator of its own process, after the normaliser: the setup it built from it, so the
/// node normalises its data once whoever runs there.
/// </summary>
public sealed record SetupReady(TrainingSetup Setup);

/// <summary>The version asked for is older than anything this node still holds.</summary>
public sealed record WeightsGone(long Version);

/// <summary>
/// Sharding's hand-off stop: processed when the worker is idle, or while it still waits for a job's weights (it gives the
/// job back first), so no computation is cut short and a hand-off never waits on weights that may not come.
/// </summary>
public sealed class StopWorker
{
    public static readonly StopWorker Instance = new();
}

/// <summary>Marker types that key the actor registry.</summary>
public sealed class WorkerRegion;

public sealed class CoordinatorSingleton;

public sealed class WeightsCacheActor;

public sealed class RangeOwnerActor;

public sealed class NodeAgentActor;
