using Akka.Cluster.Sharding;
using DistributedBackprop.Cluster.Wire;

namespace DistributedBackprop.Cluster.Hosting;

/// <summary>Routes worker messages to entities by worker id; shards by hash (fixed for the cluster's life).</summary>
public sealed class WorkerMessageExtractor(int maxShards) : HashCodeMessageExtractor(maxShards)
{
    public override string? EntityId(object message) => (message as IWorkerMessage)?.WorkerId;
}

/// <summary>Marker types that key the actor registry.</summary>
public sealed class WorkerRegion;

public sealed class CoordinatorSingleton;

public sealed class WeightsCacheActor;

public sealed class NodeAgentActor;
