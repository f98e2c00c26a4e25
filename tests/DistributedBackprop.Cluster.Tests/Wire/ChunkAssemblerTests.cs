using Akka.Actor;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Transport;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Wire;

public sealed class ChunkAssemblerTests : TestKit
{
    private readonly WireSerializer _serializer;
    private readonly TensorTransport _transport;

    public ChunkAssemblerTests() : base(WireSamples.HostedSystem("chunks", remoting: false))
    {
        _transport = TensorTransport.For(Sys);
        _serializer = _transport.Serializer;
    }

    private static SliceResult BigSlice(int floats, int seed)
    {
        var rng = new Random(seed);
        return new SliceResult("run", 5, 4, 2, 1, Enumerable.Range(0, floats).Select(_ => WireSamples.RandomFloat(rng)).ToArray(), "w1", 1.5);
    }

    private TensorChunk[] Chunks(IWireMessage message) => _transport.Prepare(message).Cast<TensorChunk>().ToArray();

    [Fact]
    public void A_3_MB_slice_result_is_chunked_and_reassembled_bit_identical()
    {
        var message = BigSlice(750_000, 1); // 3,000,000 bytes of floats
        var chunks = Chunks(message);
        Assert.Equal(12, chunks.Length); // ceil(3,000,0xx / 262,144)
        Assert.All(chunks, c => Assert.True(c.Bytes.Length <= TensorTransport.DefaultChunkBytes));
        Assert.All(chunks, c => Assert.Equal(chunks.Length, c.Count));
        Assert.Equal(Enumerable.Range(0, chunks.Length), chunks.Select(c => c.Index));
        Assert.Single(chunks.Select(c => c.TransferId).Distinct());

        var assembler = new ChunkAssembler(_serializer);
        for (var i = 0; i < chunks.Length - 1; i++)
        {
            Assert.False(assembler.TryAccept(TestActor, chunks[i], out var none));
            Assert.Null(none);
        }
        Assert.True(assembler.TryAccept(TestActor, chunks[^1], out var complete));
        WireSamples.AssertBitEqual(message, complete!);
        Assert.Equal(0, assembler.PendingTransfers);
    }

    [Fact]
    public void A_transfer_that_stops_arriving_is_dropped_after_the_idle_limit()
    {
        var now = 0L;
        var assembler = new ChunkAssembler(_serializer, maxIdle: TimeSpan.FromSeconds(30), clock: () => now);
        var stalled = Chunks(BigSlice(750_000, 2));
        assembler.Accept(TestActor, stalled[0]);
        Assert.Equal(1, assembler.PendingTransfers);

        // Any later chunk, from anyone, sweeps out what has been idle too long; a transfer still arriving is kept.
        now += 29_000;
        var other = CreateTestProbe();
        var live = Chunks(BigSlice(750_000, 3));
        assembler.Accept(other, live[0]);
        Assert.Equal(2, assembler.PendingTransfers);
        now += 2_000;
        assembler.Accept(other, live[1]);
        Assert.Equal(1, assembler.PendingTransfers);
        Assert.Equal(1, assembler.DiscardedTransfers);
        // The stalled sender's next chunk finds no transfer: refused, nothing held.
        Assert.Equal(ChunkStatus.Rejected, assembler.Accept(TestActor, stalled[1]).Status);
    }

    [Fact]
    public void Small_messages_travel_whole_and_transfer_ids_are_unique()
    {
        var small = new PullWeights("run", 3);
        Assert.Same(small, Assert.Single(_transport.Prepare(small)));
        var big = BigSlice(100_000, 2);
        Assert.NotEqual(Chunks(big)[0].TransferId, Chunks(big)[0].TransferId);
    }

    [Fact]
    public void Local_targets_get_the_object_itself()
    {
        Assert.True(TensorTransport.IsLocal(TestActor));
        var message = BigSlice(750_000, 3);
        _transport.Send(TestActor, message, TestActor);
        Assert.Same(message, ExpectMsg<SliceResult>(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void Duplicate_chunk_is_rejected_and_drops_the_transfer()
    {
        var chunks = Chunks(BigSlice(200_000, 4));
        var assembler = new ChunkAssembler(_serializer);
        Assert.Equal(ChunkStatus.Pending, assembler.Accept(TestActor, chunks[0]).Status);
        Assert.Equal(ChunkStatus.Pending, assembler.Accept(TestActor, chunks[1]).Status);
        var duplicate = assembler.Accept(TestActor, chunks[1]);
        Assert.Equal(ChunkStatus.Rejected, duplicate.Status);
        Assert.Contains("duplicate", duplicate.Reason);
        Assert.Equal(0, assembler.PendingTransfers);
        // the rest of the dropped transfer is refused too, never half-assembled
        Assert.Equal(ChunkStatus.Rejected, assembler.Accept(TestActor, chunks[2]).Status);
        Assert.Throws<ChunkRejectedException>(() => assembler.TryAccept(TestActor, chunks[^1], out _));
    }

    [Fact]
    public void Out_of_range_count_mismatch_gap_and_nested_chunks_are_rejected()
    {
        var chunks = Chunks(BigSlice(200_000, 5));
        var assembler = new ChunkAssembler(_serializer);
        Assert.Equal(ChunkStatus.Rejected, assembler.Accept(TestActor, chunks[0] with { Index = chunks[0].Count }).Status);
        Assert.Equal(ChunkStatus.Rejected, assembler.Accept(TestActor, chunks[0] with { Index = -1 }).Status);
        Assert.Equal(ChunkStatus.Rejected, assembler.Accept(TestActor, chunks[0] with { Count = 0 }).Status);
        Assert.Equal(ChunkStatus.Rejected, assembler.Accept(TestActor, chunks[0] with { Count = ChunkAssembler.MaxChunksPerTransfer + 1 }).Status);
        Assert.Equal(ChunkStatus.Rejected, assembler.Accept(TestActor, chunks[0] with { Manifest = "tc" }).Status);

        Assert.Equal(ChunkStatus.Pending, assembler.Accept(TestActor, chunks[0]).Status);
        var mismatch = assembler.Accept(TestActor, chunks[1] with { Count = chunks[1].Count + 1 });
        Assert.Equal(ChunkStatus.Rejected, mismatch.Status);
        Assert.Equal(0, assembler.PendingTransfers);

        Assert.Equal(ChunkStatus.Pending, assembler.Accept(TestActor, chunks[0]).Status);
        var gap = assembler.Accept(TestActor, chunks[2]);
        Assert.Equal(ChunkStatus.Rejected, gap.Status);
        Assert.Contains("lost chunk", gap.Reason);

        Assert.Equal(ChunkStatus.Rejected, assembler.Accept(TestActor, chunks[1]).Status); // no transfer in flight
    }

    [Fact]
    public void Corrupt_or_unknown_reassembled_payload_is_rejected_not_thrown()
    {
        var chunks = Chunks(BigSlice(100_000, 6));
        var assembler = new ChunkAssembler(_serializer);
        foreach (var chunk in chunks[..^1])
        {
            assembler.Accept(TestActor, chunk);
        }
        var corrupt = assembler.Accept(TestActor, chunks[^1] with { Bytes = chunks[^1].Bytes[..^3] });
        Assert.Equal(ChunkStatus.Rejected, corrupt.Status);
        Assert.Contains("unreadable", corrupt.Reason);

        var unknown = Chunks(BigSlice(100_000, 7)).Select(c => c with { Manifest = "??" }).ToArray();
        foreach (var chunk in unknown[..^1])
        {
            assembler.Accept(TestActor, chunk);
        }
        Assert.Equal(ChunkStatus.Rejected, assembler.Accept(TestActor, unknown[^1]).Status);
    }

    [Fact]
    public void Oversized_transfer_is_dropped_as_soon_as_it_exceeds_the_limit()
    {
        var chunks = Chunks(BigSlice(200_000, 8));
        var assembler = new ChunkAssembler(_serializer, maxTransferBytes: 2 * TensorTransport.DefaultChunkBytes);
        Assert.Equal(ChunkStatus.Pending, assembler.Accept(TestActor, chunks[0]).Status);
        Assert.Equal(ChunkStatus.Pending, assembler.Accept(TestActor, chunks[1]).Status);
        Assert.Equal(ChunkStatus.Rejected, assembler.Accept(TestActor, chunks[2]).Status);
        Assert.Equal(0, assembler.PendingTransfers);
    }

    [Fact]
    public void A_newer_transfer_from_the_same_sender_discards_the_stale_one()
    {
        var first = Chunks(BigSlice(200_000, 9));
        var secondMessage = BigSlice(200_000, 10);
        var second = Chunks(secondMessage);
        var assembler = new ChunkAssembler(_serializer);
        assembler.Accept(TestActor, first[0]);
        assembler.Accept(TestActor, first[1]);
        IWireMessage? complete = null;
        foreach (var chunk in second)
        {
            assembler.TryAccept(TestActor, chunk, out complete);
        }
        WireSamples.AssertBitEqual(secondMessage, complete!);
        Assert.Equal(1, assembler.DiscardedTransfers);
        Assert.Equal(0, assembler.PendingTransfers);
    }

    [Fact]
    public void Senders_reassemble_independently_and_pending_transfers_are_bounded()
    {
        var senders = Enumerable.Range(0, 4).Select(_ => CreateTestProbe().Ref).ToArray();
        var messages = Enumerable.Range(0, 4).Select(i => BigSlice(200_000, 20 + i)).ToArray();
        var transfers = messages.Select(Chunks).ToArray();
        var assembler = new ChunkAssembler(_serializer, maxPendingTransfers: 3);

        // interleave senders 0..2 chunk by chunk: all complete
        var results = new IWireMessage?[3];
        for (var index = 0; index < transfers[0].Length; index++)
        {
            for (var s = 0; s < 3; s++)
            {
                if (assembler.TryAccept(senders[s], transfers[s][index], out var complete))
                {
                    results[s] = complete;
                }
            }
        }
        for (var s = 0; s < 3; s++)
        {
            WireSamples.AssertBitEqual(messages[s], results[s]!);
        }

        // four senders start; the bound of three evicts the least recently active (sender 0)
        for (var s = 0; s < 4; s++)
        {
            assembler.Accept(senders[s], transfers[s][0]);
        }
        Assert.Equal(3, assembler.PendingTransfers);
        Assert.Equal(ChunkStatus.Rejected, assembler.Accept(senders[0], transfers[0][1]).Status);
        Assert.Equal(ChunkStatus.Pending, assembler.Accept(senders[3], transfers[3][1]).Status);
    }
}
