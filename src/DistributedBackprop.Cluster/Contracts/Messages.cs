using MessagePack;

namespace DistributedBackprop.Cluster.Contracts;

/// <summary>
/// Marker for every message that may cross the network. All of them are bound to <see cref="WireSerializer"/>; none may
/// fall back to Akka's JSON serializer. Tensors are <c>float[]</c> written as raw little-endian blobs
/// (<see cref="RawFloatsFormatter"/>), never as arrays of MessagePack floats.
/// </summary>
public interface IWireMessage;

/// <summary>A message for one worker entity; the shard region routes it by <see cref="WorkerId"/>.</summary>
public interface IWorkerMessage : IWireMessage
{
    string WorkerId { get; }
}

// ---- coordinator → worker entities (through the shard region) ----

/// <summary>Compute slices [FirstSlice, FirstSlice + SliceCount) of a step with weights version Version.</summary>
[MessagePackObject]
public sealed record ComputeSlices(
    [property: Key(0)] string WorkerId,
    [property: Key(1)] string RunId,
    [property: Key(2)] long Step,
    [property: Key(3)] long Version,
    [property: Key(4)] int FirstSlice,
    [property: Key(5)] int SliceCount) : IWorkerMessage;

/// <summary>Compute feature statistics of training-data chunks [FirstChunk, FirstChunk + ChunkCount).</summary>
[MessagePackObject]
public sealed record ComputeStatistics(
    [property: Key(0)] string WorkerId,
    [property: Key(1)] string RunId,
    [property: Key(2)] int FirstChunk,
    [property: Key(3)] int ChunkCount,
    [property: Key(4)] int ChunkRows) : IWorkerMessage;

/// <summary>Evaluate held-out chunks [FirstChunk, FirstChunk + ChunkCount) with weights version Version.</summary>
[MessagePackObject]
public sealed record EvaluateChunks(
    [property: Key(0)] string WorkerId,
    [property: Key(1)] string RunId,
    [property: Key(2)] long Version,
    [property: Key(3)] int FirstChunk,
    [property: Key(4)] int ChunkCount) : IWorkerMessage;

/// <summary>Start the entity (if it is not running) and say where it lives.</summary>
[MessagePackObject]
public sealed record StartWorker(
    [property: Key(0)] string WorkerId,
    [property: Key(1)] string RunId) : IWorkerMessage;

// ---- worker → coordinator ----

/// <summary>The entity runs, on the node at NodeAddress.</summary>
[MessagePackObject]
public sealed record WorkerStarted(
    [property: Key(0)] string RunId,
    [property: Key(1)] string WorkerId,
    [property: Key(2)] string NodeAddress) : IWireMessage;

/// <summary>The sum over one aligned subtree (Level, Index) of the canonical tree for a step.</summary>
[MessagePackObject]
public sealed record SliceResult(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Step,
    [property: Key(2)] long Version,
    [property: Key(3)] int Level,
    [property: Key(4)] int Index,
    [property: Key(5), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Sum,
    [property: Key(6)] string WorkerId,
    [property: Key(7)] double ComputeSeconds) : IWireMessage;

/// <summary>Mergeable feature statistics (count, mean, M2) of one training-data chunk.</summary>
[MessagePackObject]
public sealed record StatisticsResult(
    [property: Key(0)] string RunId,
    [property: Key(1)] int Chunk,
    [property: Key(2)] long Count,
    [property: Key(3), MessagePackFormatter(typeof(RawDoublesFormatter))] double[] Mean,
    [property: Key(4), MessagePackFormatter(typeof(RawDoublesFormatter))] double[] M2) : IWireMessage;

/// <summary>Loss sum and correct count of one held-out chunk.</summary>
[MessagePackObject]
public sealed record EvaluationResult(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Version,
    [property: Key(2)] int Chunk,
    [property: Key(3)] double LossSum,
    [property: Key(4)] int Correct) : IWireMessage;

/// <summary>A worker could not do what it was asked (e.g. weights version gone); the coordinator re-assigns.</summary>
[MessagePackObject]
public sealed record WorkFailed(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Step,
    [property: Key(2)] string WorkerId,
    [property: Key(3)] string Reason) : IWireMessage;

// ---- weights distribution: coordinator → one cache per node; cache ↔ coordinator ----

/// <summary>Weights of one version, sent once per node and cached there for the node's worker entities.</summary>
[MessagePackObject]
public sealed record WeightsVersion(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Version,
    [property: Key(2), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Parameters,
    [property: Key(3), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Buffers) : IWireMessage;

/// <summary>The feature normaliser the coordinator merged; workers normalise their local data with it.</summary>
[MessagePackObject]
public sealed record NormaliserReady(
    [property: Key(0)] string RunId,
    [property: Key(1), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Mean,
    [property: Key(2), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Std) : IWireMessage;

/// <summary>A node's cache missed a version (it joined late or lost a message): send it again.</summary>
[MessagePackObject]
public sealed record PullWeights(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Version) : IWireMessage;

// ---- cluster lifecycle ----

/// <summary>The sender's node takes data-channel frames at Host:Port (one node's exchange actor tells the others').</summary>
[MessagePackObject]
public sealed record DataEndpoint(
    [property: Key(0)] string Host,
    [property: Key(1)] int Port) : IWireMessage;

/// <summary>A node introduces itself to the coordinator with the hash of the options it was started with.</summary>
[MessagePackObject]
public sealed record RegisterNode(
    [property: Key(0)] string Address,
    [property: Key(1)] string ConfigHash) : IWireMessage;

/// <summary>The coordinator accepts a node (and tells it the run) or refuses it with a reason.</summary>
[MessagePackObject]
public sealed record NodeVerdict(
    [property: Key(0)] bool Accepted,
    [property: Key(1)] string RunId,
    [property: Key(2)] string Reason) : IWireMessage;

/// <summary>
/// The job is over: every node leaves the cluster. Its status, and the checkpoint folder a failed job can resume from
/// ("" when none: the wire carries no nil strings).
/// </summary>
[MessagePackObject]
public sealed record JobFinished(
    [property: Key(0)] string RunId,
    [property: Key(1)] JobStatus Status,
    [property: Key(2)] string Message,
    [property: Key(3)] string ResumeFrom) : IWireMessage;

/// <summary>One piece of a large message cut up by the tensor transport so heartbeats never wait behind it.</summary>
[MessagePackObject]
public sealed record TensorChunk(
    [property: Key(0)] long TransferId,
    [property: Key(1)] int Index,
    [property: Key(2)] int Count,
    [property: Key(3)] string Manifest,
    [property: Key(4)] byte[] Bytes) : IWireMessage;
