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

/// <summary>
/// Compute slices [FirstSlice, FirstSlice + SliceCount) of a step with weights version Version. Generation is the range
/// plan's (sharded aggregation; 0 otherwise): a version of a newer plan than a cache has seen is on its way there, not
/// gone, even when the cache holds higher versions of an older one.
/// </summary>
[MessagePackObject]
public sealed record ComputeSlices(
    [property: Key(0)] string WorkerId,
    [property: Key(1)] string RunId,
    [property: Key(2)] long Step,
    [property: Key(3)] long Version,
    [property: Key(4)] int FirstSlice,
    [property: Key(5)] int SliceCount,
    [property: Key(6)] long Generation = 0) : IWorkerMessage;

/// <summary>Compute feature statistics of training-data chunks [FirstChunk, FirstChunk + ChunkCount).</summary>
[MessagePackObject]
public sealed record ComputeStatistics(
    [property: Key(0)] string WorkerId,
    [property: Key(1)] string RunId,
    [property: Key(2)] int FirstChunk,
    [property: Key(3)] int ChunkCount,
    [property: Key(4)] int ChunkRows) : IWorkerMessage;

/// <summary>
/// Evaluate held-out chunks [FirstChunk, FirstChunk + ChunkCount) with weights version Version (of the range plan
/// Generation, as in <see cref="ComputeSlices"/>).
/// </summary>
[MessagePackObject]
public sealed record EvaluateChunks(
    [property: Key(0)] string WorkerId,
    [property: Key(1)] string RunId,
    [property: Key(2)] long Version,
    [property: Key(3)] int FirstChunk,
    [property: Key(4)] int ChunkCount,
    [property: Key(5)] long Generation = 0) : IWorkerMessage;

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

/// <summary>
/// The sum over one aligned subtree (Level, Index) of the canonical tree for a step. With sharded aggregation the sum
/// went to the range owners in pieces (<see cref="GradientPiece"/>): Sum is empty, and the coordinator gets the sum's
/// SHA-256 (to compare duplicates) and whether it was finite.
/// </summary>
[MessagePackObject]
public sealed record SliceResult(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Step,
    [property: Key(2)] long Version,
    [property: Key(3)] int Level,
    [property: Key(4)] int Index,
    [property: Key(5), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Sum,
    [property: Key(6)] string WorkerId,
    [property: Key(7)] double ComputeSeconds,
    [property: Key(8)] byte[] Fingerprint,
    [property: Key(9)] bool Finite) : IWireMessage
{
    /// <summary>A result whose sum travels with it (coordinator aggregation).</summary>
    public SliceResult(string runId, long step, long version, int level, int index, float[] sum, string workerId,
        double computeSeconds) : this(runId, step, version, level, index, sum, workerId, computeSeconds, [], true)
    {
    }

    /// <summary>True when the sum went to the range owners and only its fingerprint came here.</summary>
    [IgnoreMember]
    public bool Shipped => Sum.Length == 0;
}

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

// ---- sharded aggregation: the coordinator, the range owners (one per node) and the caches ----

/// <summary>
/// Who owns which range of the result vector from now on (coordinator → every cache and owner). Generation numbers the
/// plans of a coordinator incarnation; a message of another generation is stale. Owners[r] is a node address; range r is
/// [Firsts[r], Ends[r]); the last range also holds what follows the parameters (statistics, loss sum, correct count).
/// </summary>
[MessagePackObject]
public sealed record RangePlan(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Generation,
    [property: Key(2)] string[] Owners,
    [property: Key(3)] int[] Firsts,
    [property: Key(4)] int[] Ends) : IWireMessage;

/// <summary>
/// Coordinator → the owner of range Range: its plan, and its range's state at weights version Version: the parameters,
/// the optimizer state (each of the optimizer's per-parameter vectors for the range, one after the other) and the
/// buffers (every owner gets them; range 0's owner publishes them with each version).
/// </summary>
[MessagePackObject]
public sealed record OwnRange(
    [property: Key(0)] RangePlan Plan,
    [property: Key(1)] int Range,
    [property: Key(2)] long Version,
    [property: Key(3), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Parameters,
    [property: Key(4), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] OptimizerState,
    [property: Key(5), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Buffers,
    [property: Key(6)] long AppliedUpdates) : IWireMessage;

/// <summary>Worker → the owner of range Range: that range of its sum over subtree (Level, Index) of a step.</summary>
[MessagePackObject]
public sealed record GradientPiece(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Generation,
    [property: Key(2)] long Step,
    [property: Key(3)] int Range,
    [property: Key(4)] int Level,
    [property: Key(5)] int Index,
    [property: Key(6)] string WorkerId,
    [property: Key(7), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Values) : IWireMessage;

/// <summary>
/// Coordinator → every owner: the step's tree is covered by these subtrees (Levels[i], Indices[i]), each to be taken
/// from the piece of Workers[i]: complete the tree for your range, divide, and send the squares.
/// </summary>
[MessagePackObject]
public sealed record ReduceRange(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Generation,
    [property: Key(2)] long Step,
    [property: Key(3)] int[] Levels,
    [property: Key(4)] int[] Indices,
    [property: Key(5)] string[] Workers) : IWireMessage;

/// <summary>
/// Owner → coordinator: its range's blocks' sums of squares of the averaged gradient, the tail after the parameters
/// (the last range only; empty otherwise), and the tensor bytes it moved since its last report (Peers[i]: the other
/// node, Bytes[i]: sent plus received), for the per-node figures.
/// </summary>
[MessagePackObject]
public sealed record RangeReduced(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Generation,
    [property: Key(2)] long Step,
    [property: Key(3)] int Range,
    [property: Key(4), MessagePackFormatter(typeof(RawDoublesFormatter))] double[] BlockSquares,
    [property: Key(5), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Tail,
    [property: Key(6)] string[] Peers,
    [property: Key(7)] long[] Bytes) : IWireMessage;

/// <summary>
/// Coordinator → every owner: apply step Step to your range (unless Skip) with this clipping factor, learning rate and
/// update count, and publish version Step + 1 to every node with these buffers.
/// </summary>
[MessagePackObject]
public sealed record ApplyRange(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Generation,
    [property: Key(2)] long Step,
    [property: Key(3)] bool Skip,
    [property: Key(4)] float Scale,
    [property: Key(5)] float LearningRate,
    [property: Key(6)] long AppliedUpdates,
    [property: Key(7), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Buffers) : IWireMessage;

/// <summary>
/// Owner → every node's cache: range Range of the parameters of weights version Version under Plan (which the cache hands
/// to its workers with the version: where to send their pieces), and from range 0 the buffers.
/// </summary>
[MessagePackObject]
public sealed record WeightsRange(
    [property: Key(0)] RangePlan Plan,
    [property: Key(1)] long Version,
    [property: Key(2)] int Range,
    [property: Key(3), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Parameters,
    [property: Key(4), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Buffers) : IWireMessage;

/// <summary>Coordinator → every owner: send your range's parameters and optimizer state at version Version (a checkpoint, the end).</summary>
[MessagePackObject]
public sealed record SnapshotRange(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Generation,
    [property: Key(2)] long Version) : IWireMessage;

/// <summary>Owner → coordinator: its range's parameters and optimizer state at version Version.</summary>
[MessagePackObject]
public sealed record RangeSnapshot(
    [property: Key(0)] string RunId,
    [property: Key(1)] long Generation,
    [property: Key(2)] long Version,
    [property: Key(3)] int Range,
    [property: Key(4), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] Parameters,
    [property: Key(5), MessagePackFormatter(typeof(RawFloatsFormatter))] float[] OptimizerState) : IWireMessage;

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
