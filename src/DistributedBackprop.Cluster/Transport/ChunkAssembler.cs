using System.Runtime.Serialization;
using Akka.Actor;
using DistributedBackprop.Cluster.Contracts;

namespace DistributedBackprop.Cluster.Transport;

/// <summary>What became of one <see cref="TensorChunk"/>.</summary>
public enum ChunkStatus
{
    /// <summary>Accepted; the transfer is not complete yet.</summary>
    Pending,

    /// <summary>The last chunk: the message is reassembled.</summary>
    Complete,

    /// <summary>The chunk was invalid; its transfer (if any) is dropped.</summary>
    Rejected,
}

/// <summary>The outcome of <see cref="ChunkAssembler.Accept"/>.</summary>
public readonly record struct ChunkOutcome(ChunkStatus Status, IWireMessage? Message, string? Reason)
{
    public static readonly ChunkOutcome Pending = new(ChunkStatus.Pending, null, null);

    public static ChunkOutcome Complete(IWireMessage message) => new(ChunkStatus.Complete, message, null);

    public static ChunkOutcome Rejected(string reason) => new(ChunkStatus.Rejected, null, reason);
}

/// <summary>A chunk the assembler refused; its transfer was dropped. Log it; nothing else needs doing.</summary>
public sealed class ChunkRejectedException(string message) : Exception(message);

/// <summary>
/// Reassembles <see cref="TensorChunk"/> runs sent by <see cref="TensorTransport"/>, one pending transfer per sender.
/// Not thread-safe: own one per actor and call it from that actor's message handler.
/// </summary>
/// <remarks>
/// Chunks of one transfer come from one sender actor, and Akka keeps per sender–receiver order, so they arrive in index
/// order and a new transfer from a sender means its previous one lost a chunk (e.g. a dropped oversized frame or a
/// broken association): that previous transfer can never complete and is discarded.
/// </remarks>
public sealed class ChunkAssembler
{
    /// <summary>Upper bound on chunks in one transfer (256 MiB in 4 KiB chunks).</summary>
    public const int MaxChunksPerTransfer = 1 << 16;

    /// <summary>A transfer with no chunk for this long is dropped: its sender died or lost a chunk.</summary>
    public static readonly TimeSpan DefaultMaxIdle = TimeSpan.FromSeconds(30);

    private readonly Dictionary<string, Pending> _pending = new(StringComparer.Ordinal);
    private readonly Func<long> _clock;
    private long _arrivals;

    /// <param name="maxTransferBytes">the largest message of the job (a node passes its <see cref="NodeContext.LargestMessageBytes"/>).</param>
    /// <param name="clock">milliseconds, for the idle expiry (default <see cref="Environment.TickCount64"/>).</param>
    public ChunkAssembler(WireSerializer serializer, int maxPendingTransfers = 16, int maxTransferBytes = WireSerializer.MaxPayloadBytes,
        TimeSpan? maxIdle = null, Func<long>? clock = null)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPendingTransfers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTransferBytes, 1);
        Serializer = serializer;
        MaxPendingTransfers = maxPendingTransfers;
        MaxTransferBytes = maxTransferBytes;
        MaxIdle = maxIdle ?? DefaultMaxIdle;
        _clock = clock ?? (() => Environment.TickCount64);
    }

    /// <summary>A pending transfer that gets no chunk for this long is discarded at the next arrival of any chunk.</summary>
    public TimeSpan MaxIdle { get; }

    public WireSerializer Serializer { get; }

    /// <summary>At most this many senders may have a transfer in flight; the least recently active is dropped beyond it.</summary>
    public int MaxPendingTransfers { get; }

    /// <summary>A transfer whose bytes exceed this is dropped as soon as it does.</summary>
    public int MaxTransferBytes { get; }

    /// <summary>Transfers in flight (for tests and diagnostics).</summary>
    public int PendingTransfers => _pending.Count;

    /// <summary>Partial transfers discarded as stale (superseded by a newer transfer or evicted by the bound).</summary>
    public long DiscardedTransfers { get; private set; }

    /// <summary>
    /// Accepts one chunk. True with <paramref name="complete"/> set when it completes a message; false while the
    /// transfer is pending. Throws <see cref="ChunkRejectedException"/> (its transfer dropped) for an invalid chunk.
    /// </summary>
    public bool TryAccept(IActorRef sender, TensorChunk chunk, out IWireMessage? complete)
    {
        var outcome = Accept(sender, chunk);
        if (outcome.Status == ChunkStatus.Rejected)
        {
            throw new ChunkRejectedException(outcome.Reason!);
        }
        complete = outcome.Message;
        return outcome.Status == ChunkStatus.Complete;
    }

    /// <summary>Accepts one chunk and says what became of it, without throwing for invalid chunks.</summary>
    public ChunkOutcome Accept(IActorRef sender, TensorChunk chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        ExpireIdle();
        var key = sender?.Path.ToSerializationFormat() ?? "<no sender>";
        var where = $"transfer {chunk.TransferId} from {key}";
        if (chunk.Count < 1 || chunk.Count > MaxChunksPerTransfer)
        {
            return Drop(key, chunk.TransferId, $"Chunk count {chunk.Count} of {where} is outside 1..{MaxChunksPerTransfer}.");
        }
        if (chunk.Index < 0 || chunk.Index >= chunk.Count)
        {
            return Drop(key, chunk.TransferId, $"Chunk index {chunk.Index} of {where} is outside 0..{chunk.Count - 1}.");
        }
        if (chunk.Bytes is null || chunk.Manifest is null)
        {
            return Drop(key, chunk.TransferId, $"Chunk {chunk.Index} of {where} has no bytes or no manifest.");
        }
        if (WireSerializer.ManifestOf(typeof(TensorChunk)) == chunk.Manifest)
        {
            return Drop(key, chunk.TransferId, $"Chunk {chunk.Index} of {where} wraps a chunk.");
        }

        _pending.TryGetValue(key, out var pending);
        if (pending is not null && pending.TransferId != chunk.TransferId)
        {
            if (chunk.Index != 0)
            {
                return Drop(key, chunk.TransferId,
                    $"Chunk {chunk.Index} of {where} arrived while transfer {pending.TransferId} was in flight.");
            }
            _pending.Remove(key); // a newer transfer from the same sender: the older one can never complete
            DiscardedTransfers++;
            pending = null;
        }
        if (pending is null)
        {
            if (chunk.Index != 0)
            {
                return Drop(key, chunk.TransferId, $"Chunk {chunk.Index} of {where} has no transfer (its start was lost or dropped).");
            }
            pending = new Pending(chunk.TransferId, chunk.Count, chunk.Manifest);
            if (chunk.Count > 1)
            {
                EvictIfFull();
                _pending[key] = pending;
            }
        }
        else
        {
            if (chunk.Count != pending.Count)
            {
                return Drop(key, chunk.TransferId, $"Chunk {chunk.Index} of {where} says {chunk.Count} chunks; the transfer has {pending.Count}.");
            }
            if (!string.Equals(chunk.Manifest, pending.Manifest, StringComparison.Ordinal))
            {
                return Drop(key, chunk.TransferId, $"Chunk {chunk.Index} of {where} changes the manifest.");
            }
            if (chunk.Index < pending.Received)
            {
                return Drop(key, chunk.TransferId, $"Chunk {chunk.Index} of {where} is a duplicate.");
            }
            if (chunk.Index > pending.Received)
            {
                return Drop(key, chunk.TransferId, $"Chunk {chunk.Index} of {where} arrived before chunk {pending.Received} (lost chunk).");
            }
        }

        if ((long)pending.Bytes + chunk.Bytes.Length > MaxTransferBytes)
        {
            return Drop(key, chunk.TransferId, $"{where} exceeds {MaxTransferBytes} bytes.");
        }
        pending.Add(chunk.Bytes, ++_arrivals, _clock());
        if (pending.Received < pending.Count)
        {
            return ChunkOutcome.Pending;
        }

        _pending.Remove(key);
        try
        {
            return ChunkOutcome.Complete(WireSerializer.Deserialize(pending.Join(), pending.Manifest));
        }
        catch (SerializationException e)
        {
            return ChunkOutcome.Rejected($"{where} reassembled into an unreadable payload: {e.Message}");
        }
    }

    private ChunkOutcome Drop(string key, long transferId, string reason)
    {
        if (_pending.TryGetValue(key, out var pending) && pending.TransferId == transferId)
        {
            _pending.Remove(key);
        }
        return ChunkOutcome.Rejected(reason);
    }

    /// <summary>Drops transfers idle past <see cref="MaxIdle"/>: what a peer started and never finished is not held for ever.</summary>
    private void ExpireIdle()
    {
        if (_pending.Count == 0)
        {
            return;
        }
        var now = _clock();
        foreach (var key in _pending.Where(p => now - p.Value.LastSeen > (long)MaxIdle.TotalMilliseconds).Select(p => p.Key).ToList())
        {
            _pending.Remove(key);
            DiscardedTransfers++;
        }
    }

    private void EvictIfFull()
    {
        while (_pending.Count >= MaxPendingTransfers)
        {
            var oldest = _pending.MinBy(p => p.Value.LastArrival).Key;
            _pending.Remove(oldest);
            DiscardedTransfers++;
        }
    }

    private sealed class Pending(long transferId, int count, string manifest)
    {
        private readonly List<byte[]> _parts = [];

        public long TransferId { get; } = transferId;
        public int Count { get; } = count;
        public string Manifest { get; } = manifest;
        public int Received => _parts.Count;
        public int Bytes { get; private set; }
        public long LastArrival { get; private set; }
        public long LastSeen { get; private set; }

        public void Add(byte[] part, long arrival, long now)
        {
            _parts.Add(part);
            Bytes += part.Length;
            LastArrival = arrival;
            LastSeen = now;
        }

        public byte[] Join()
        {
            if (_parts.Count == 1)
            {
                return _parts[0];
            }
            var all = new byte[Bytes];
            var at = 0;
            foreach (var part in _parts)
            {
                part.CopyTo(all, at);
                at += part.Length;
            }
            return all;
        }
    }
}
