using Akka.Actor;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Telemetry;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Core.Data;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// Everything the coordinator sends, and to whom: work to the worker entities (through the shard region), the
/// normaliser and the weights to the nodes' caches (counting the bytes that leave the node), the end of the job to the
/// node agents. The rooms decide what to send; the outbox knows the addresses and the transport.
/// </summary>
public sealed class CoordinatorOutbox(
    string runId, IActorRef workers, TensorTransport transport, ClusterView view, ActorSystem system, IActorRef self)
{
    /// <summary>Where the bytes sent per step are counted, once training has started.</summary>
    public StepTimings? Timings { get; set; }

    /// <summary>The range plan's generation the work is computed in (sharded aggregation; 0 otherwise).</summary>
    public long Generation { get; set; }

    public void StartWorker(string worker) => workers.Tell(new StartWorker(worker, runId), self);

    public void Compute(IEnumerable<Assignment> assignments, long step, long version)
    {
        foreach (var a in assignments)
        {
            workers.Tell(new ComputeSlices(a.Worker, runId, step, version, a.First, a.Count, Generation), self);
        }
    }

    public void Statistics(IEnumerable<(string Worker, int First, int Count)> chunks, int chunkRows)
    {
        foreach (var (worker, first, count) in chunks)
        {
            workers.Tell(new ComputeStatistics(worker, runId, first, count, chunkRows), self);
        }
    }

    public void Evaluate(IEnumerable<(string Worker, int First, int Count)> chunks, long version)
    {
        foreach (var (worker, first, count) in chunks)
        {
            workers.Tell(new EvaluateChunks(worker, runId, version, first, count, Generation), self);
        }
    }

    /// <summary>Asks a new member for its weights cache (the answer is an <see cref="ActorIdentity"/> with its address).</summary>
    public void IdentifyCache(Address node) =>
        system.ActorSelection(new RootActorPath(node) / "user" / "weights-cache").Tell(new Identify(node), self);

    public void Normaliser(IActorRef cache, FeatureNormaliser normaliser) =>
        transport.Send(cache, new NormaliserReady(runId, normaliser.Mean, normaliser.Std), self);

    public void Weights(IActorRef cache, WeightsVersion weights)
    {
        if (!TensorTransport.IsLocal(cache))
        {
            var bytes = 4L * (weights.Parameters.Length + weights.Buffers.Length);
            Timings?.Moved(view.Self.ToString(), cache.Path.Address.ToString(), bytes);
            TrainingMetrics.BytesSent.Add(bytes);
        }
        transport.Send(cache, weights, self);
    }

    /// <summary>A new version goes once to every reachable node's cache.</summary>
    public void WeightsToAll(WeightsVersion weights)
    {
        foreach (var cache in view.ReachableCaches)
        {
            Weights(cache, weights);
        }
    }

    /// <summary>A result's sum came over the network (a local one costs no bytes on the wire).</summary>
    public void Received(IActorRef sender, int floats)
    {
        if (!TensorTransport.IsLocal(sender))
        {
            Timings?.Moved(view.Self.ToString(), sender.Path.Address.ToString(), 4L * floats);
            TrainingMetrics.BytesSent.Add(4L * floats);
        }
    }

    /// <summary>Every member's node agent learns that the job is over.</summary>
    public void Broadcast(JobFinished message)
    {
        foreach (var member in view.Members)
        {
            system.ActorSelection(new RootActorPath(member) / "user" / "node-agent").Tell(message, self);
        }
    }
}
