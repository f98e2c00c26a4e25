using System.Buffers.Binary;
using System.Runtime.Serialization;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Tests.Wire;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Core.Tests.Fuzz;
using Xunit;
using Xunit.Abstractions;

namespace DistributedBackprop.Cluster.Tests.Fuzz;

/// <summary>
/// What a peer can send a node, mutated (<see cref="Fuzzer"/>): every wire message, data-channel frames, the data
/// channel's handshake, and chunk streams. Each decoder refuses a bad input with its own error and nothing else.
/// </summary>
public sealed class WireDecoderFuzzTests : TestKit
{
    private readonly ITestOutputHelper _output;
    private readonly WireSerializer _serializer;
    private static readonly IReadOnlyList<Type> Types = WireSamples.ConcreteWireTypes;

    public WireDecoderFuzzTests(ITestOutputHelper output) : base(WireSamples.HostedSystem("fuzz", remoting: false))
    {
        _output = output;
        _serializer = TensorTransport.SerializerOf(Sys);
    }

    private void Report(string target, (int Cases, int Accepted) result) =>
        _output.WriteLine($"{target}: {result.Cases} cases (seed {Fuzzer.Seed}), {result.Accepted} decoded, the rest refused as the input error; no other exception, none over {Fuzzer.MaxCallTime.TotalSeconds} s, no allocation far above the input");

    /// <summary>A sample of every wire type, small (the fuzzer's seeds).</summary>
    private IEnumerable<IWireMessage> Samples()
    {
        var rng = new Random(7);
        return Types.SelectMany(type => Enumerable.Range(0, 3).Select(_ => WireSamples.Random(type, rng)))
            .Where(m => _serializer.ToBinary(m).Length < 4096);
    }

    [Fact]
    public void Every_wire_message()
    {
        // First byte: which type's manifest the payload is read as (a mutation there reads it as another type).
        var seeds = Samples().Select(m => (byte[])[(byte)IndexOf(m.GetType()), .. _serializer.ToBinary(m)]).ToList();
        Report("wire messages", Fuzzer.Run("wire messages", seeds, input =>
        {
            if (input.Length == 0)
            {
                throw new SerializationException("empty");
            }
            WireSerializer.Deserialize(input.AsMemory(1), WireSerializer.ManifestOf(Types[input[0] % Types.Count])!);
        }, e => e is SerializationException, Fuzzer.Cases(20_000)));
    }

    [Fact]
    public void Data_channel_frames()
    {
        var seeds = Samples().Take(40).Select(m =>
        {
            var frame = DataFrames.Encode("akka.tcp://distbp@10.0.0.1:4053/user/weights-cache#1",
                "akka.tcp://distbp@10.0.0.2:4053/user/coordinator/coordinator#2", _serializer.Manifest(m), m, 0);
            try
            {
                return frame.Bytes.ToArray();
            }
            finally
            {
                frame.Release();
            }
        }).ToList();
        Report("data-channel frames", Fuzzer.Run("data-channel frames", seeds, input =>
        {
            if (input.Length < 4)
            {
                throw new MalformedFrameException("short");
            }
            var length = DataFrames.BodyLength(input, DataFrames.FrameLimitFor(100_000));
            var frame = DataFrames.Parse(input.AsMemory(4, Math.Min(length, input.Length - 4)));
            WireSerializer.Deserialize(frame.Payload, frame.Manifest);
        }, e => e is MalformedFrameException or SerializationException, Fuzzer.Cases(20_000)));
    }

    [Fact]
    public void Data_channel_handshake()
    {
        var secret = "the fuzzed node's cluster secret"u8.ToArray();
        const string self = "akka.tcp://distbp@10.0.0.1:4053";
        // A client's opening (hello and proof) as a stranger sends it: the proof cannot fit the server's fresh nonce.
        byte[][] seeds =
        [
            [.. DataChannelHandshake.Hello("akka.tcp://distbp@10.0.0.2:4053", new byte[32]), .. new byte[32]],
            [.. DataChannelHandshake.Hello(self, Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()), .. new byte[40]],
        ];
        var result = Fuzzer.Run("data-channel handshake", seeds,
            input => DataChannelHandshake.ServerAsync(new ScriptedStream(input), self, secret, CancellationToken.None)
                .GetAwaiter().GetResult(),
            e => e is HandshakeRefusedException or EndOfStreamException, Fuzzer.Cases(20_000));
        Assert.Equal(0, result.Accepted); // nobody without the secret gets through
        Report("data-channel handshake", result);
    }

    [Fact]
    public void Chunk_streams()
    {
        // A stream: int32 length, serialized TensorChunk, repeated. Two transfers, chunked small.
        var transport = new TensorTransport(_serializer, chunkBytes: 64);
        var rng = new Random(11);
        byte[][] seeds = Enumerable.Range(0, 3).Select(_ =>
        {
            var message = new WeightsVersion("run", rng.Next(), Enumerable.Range(0, 60).Select(_ => WireSamples.RandomFloat(rng)).ToArray(), []);
            var stream = new List<byte>();
            foreach (var chunk in transport.Prepare(message))
            {
                var bytes = _serializer.ToBinary(chunk);
                stream.AddRange(BitConverter.GetBytes(bytes.Length));
                stream.AddRange(bytes);
            }
            return stream.ToArray();
        }).ToArray();
        var sender = CreateTestProbe().Ref;
        Report("chunk streams", Fuzzer.Run("chunk streams", seeds, input =>
        {
            var assembler = new ChunkAssembler(_serializer, maxPendingTransfers: 4, maxTransferBytes: 64 * 1024);
            var at = 0;
            while (input.Length - at >= 4)
            {
                var length = BinaryPrimitives.ReadInt32LittleEndian(input.AsSpan(at));
                at += 4;
                if (length < 0 || length > input.Length - at)
                {
                    return; // the stream's own framing ends here, as a connection would
                }
                IWireMessage chunk;
                try
                {
                    chunk = WireSerializer.Deserialize(input.AsMemory(at, length), WireSerializer.ManifestOf(typeof(TensorChunk))!);
                }
                catch (SerializationException)
                {
                    at += length;
                    continue; // refused by the serializer; the next chunk may still be good
                }
                at += length;
                // The assembler never throws: a bad chunk is Rejected, a complete one is a readable message.
                var outcome = assembler.Accept(sender, (TensorChunk)chunk);
                if (outcome.Status == ChunkStatus.Complete)
                {
                    Assert.NotNull(outcome.Message);
                }
            }
        }, _ => false, Fuzzer.Cases(10_000)));
    }

    private static int IndexOf(Type type) => Types.ToList().IndexOf(type);

    /// <summary>Reads what a client sent; what the server writes back goes nowhere.</summary>
    private sealed class ScriptedStream(byte[] input) : Stream
    {
        private readonly MemoryStream _input = new(input, writable: false);

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _input.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) { }
    }
}
