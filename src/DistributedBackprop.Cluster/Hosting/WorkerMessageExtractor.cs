using Akka.Cluster.Sharding;
using DistributedBackprop.Cluster.Contracts;

namespace DistributedBackprop.Cluster.Hosting;

/// <summary>
/// Routes worker messages to entities by worker id. Worker "worker-K" lives in shard K mod maxShards, so distinct
/// workers never share a shard and the least-shards allocation spreads them evenly over the nodes.
/// </summary>
public sealed class WorkerMessageExtractor(int maxShards) : IMessageExtractor
{
    public const string Prefix = "worker-";
    private readonly IMessageExtractor _fallback =
        HashCodeMessageExtractor.Create(maxShards, m => (m as IWorkerMessage)?.WorkerId);

    public static string WorkerId(int index) => Prefix + index.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public string? EntityId(object message) => (message as IWorkerMessage)?.WorkerId;

    public object? EntityMessage(object message) => message;

    [Obsolete("Use ShardId(string, object?) instead.")]
    public string? ShardId(object message) => EntityId(message) is { } id ? ShardId(id, message) : null;

    public string ShardId(string entityId, object? messageHint = null) =>
        entityId.StartsWith(Prefix, StringComparison.Ordinal) && int.TryParse(entityId.AsSpan(Prefix.Length), out var index)
            ? (index % maxShards).ToString(System.Globalization.CultureInfo.InvariantCulture)
            : _fallback.ShardId(entityId, messageHint);
}
