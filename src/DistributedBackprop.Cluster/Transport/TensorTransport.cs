using Akka.Actor;
using DistributedBackprop.Cluster.Contracts;

namespace DistributedBackprop.Cluster.Transport;

/// <summary>
/// The seam through which large messages travel, so senders do not care how tensors move. A target in this process gets
/// the message object itself (no serialization, no copies). A remote target gets it over the node's
/// <see cref="DataChannel"/> when there is one and it can take the message; otherwise over Akka: the message whole when
/// its payload is at most <see cref="ChunkBytes"/>, else a run of <see cref="TensorChunk"/>s that the receiver feeds to
/// a <see cref="ChunkAssembler"/>.
/// </summary>
/// <remarks>
/// Why chunks: Akka.Remote carries everything, heartbeats included, over one TCP association per node pair, and drops a
/// message over maximum-frame-size (docs/akka-notes.md, Remoting). Chunks keep every frame small; the remoting frame sizes in
/// <see cref="RemotingSettings"/> must exceed <see cref="ChunkBytes"/> plus a small header. All chunks of one transfer
/// are enqueued at once, so a heartbeat sent after them still waits for the whole transfer to drain (~4 ms per MB at
/// the measured 0.2–0.27 GB/s); pacing by acknowledgements would be the next step if transfers grow to hundreds of MB.
/// </remarks>
public sealed class TensorTransport
{
    /// <summary>Default chunk payload size: well under the raised 4 MiB frame, large enough to keep messages few.</summary>
    public const int DefaultChunkBytes = 256 * 1024;

    // Process-wide, so ids are unique per sender whatever transport instance the sender uses (Interlocked: any thread).
    private static long s_lastTransferId;

    private readonly ActorSystem? _system;

    public TensorTransport(WireSerializer serializer, int chunkBytes = DefaultChunkBytes)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkBytes, 1);
        Serializer = serializer;
        ChunkBytes = chunkBytes;
    }

    /// <summary>A transport using the <see cref="WireSerializer"/> the system has bound to <see cref="IWireMessage"/>.
    /// The system's <see cref="DataChannel"/>, if it has one, is looked up at each send (it may start after the sender).</summary>
    public static TensorTransport For(ActorSystem system, int chunkBytes = DefaultChunkBytes) =>
        new(SerializerOf(system), chunkBytes, system);

    private TensorTransport(WireSerializer serializer, int chunkBytes, ActorSystem system) : this(serializer, chunkBytes)
    {
        _system = system;
    }

    /// <summary>The system's serializer for <see cref="IWireMessage"/>; fails if the binding is missing.</summary>
    public static WireSerializer SerializerOf(ActorSystem system) =>
        system.Serialization.FindSerializerForType(typeof(IWireMessage)) as WireSerializer
        ?? throw new InvalidOperationException(
            "IWireMessage is not bound to WireSerializer in this ActorSystem; configure it with WithWireSerializer().");

    public WireSerializer Serializer { get; }

    /// <summary>Payloads larger than this travel as chunks of at most this many bytes.</summary>
    public int ChunkBytes { get; }

    /// <summary>Sends <paramref name="message"/> to <paramref name="target"/> as from <paramref name="sender"/>.</summary>
    /// <remarks>
    /// Chunked sends need a real sender actor: the receiver reassembles per sender and relies on Akka's per
    /// sender–receiver ordering, which only holds for messages sent by one actor.
    /// </remarks>
    public void Send(IActorRef target, IWireMessage message, IActorRef sender)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(message);
        if (IsLocal(target))
        {
            target.Tell(message, sender); // same process: the object itself, zero copies
            return;
        }
        if (_system is not null && DataChannel.For(_system) is { } channel && channel.TrySend(target, message, sender))
        {
            return;
        }
        SendOverAkka(target, message, sender);
    }

    /// <summary>Sends a remote message over Akka.Remote: whole, or chunked when its payload exceeds <see cref="ChunkBytes"/>.</summary>
    public void SendOverAkka(IActorRef target, IWireMessage message, IActorRef? sender)
    {
        var pieces = Prepare(message);
        if (pieces.Count > 1 && (sender is null || sender.IsNobody()))
        {
            throw new ArgumentException(
                "A chunked send needs a sender actor: chunks are reassembled per sender and ordered per sender.", nameof(sender));
        }
        foreach (var piece in pieces)
        {
            target.Tell(piece, sender); // Akka keeps per sender–receiver order, so chunks arrive in index order
        }
    }

    /// <summary>
    /// What a remote send of <paramref name="message"/> consists of: the message itself when its payload fits in
    /// <see cref="ChunkBytes"/>, else its chunks in order.
    /// </summary>
    public IReadOnlyList<IWireMessage> Prepare(IWireMessage message)
    {
        if (message is TensorChunk)
        {
            return [message]; // never chunk a chunk
        }
        var bytes = Serializer.ToBinary(message);
        if (bytes.Length <= ChunkBytes)
        {
            return [message]; // Akka.Remote serializes it again; small messages make that cheap
        }
        var manifest = Serializer.Manifest(message);
        var transferId = Interlocked.Increment(ref s_lastTransferId);
        var count = (int)((bytes.Length + (long)ChunkBytes - 1) / ChunkBytes);
        var chunks = new IWireMessage[count];
        for (var i = 0; i < count; i++)
        {
            var start = i * ChunkBytes;
            chunks[i] = new TensorChunk(transferId, i, count, manifest, bytes[start..Math.Min(bytes.Length, start + ChunkBytes)]);
        }
        return chunks;
    }

    /// <summary>True when <paramref name="target"/> lives in this process (a local path with no remote address).</summary>
    public static bool IsLocal(IActorRef target) =>
        target is IInternalActorRef { IsLocal: true } || (target is not IInternalActorRef && target.Path.Address.HasLocalScope);
}
