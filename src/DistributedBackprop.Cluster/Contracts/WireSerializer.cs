using System.Collections.Frozen;
using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using MessagePack;

namespace DistributedBackprop.Cluster.Contracts;

/// <summary>
/// The one Akka serializer for every <see cref="IWireMessage"/>: MessagePack contracts, a short stable string manifest per
/// type, untrusted-data security and a payload size cap. Every failure to read a payload is a
/// <see cref="SerializationException"/>, which Akka.Remote logs before dropping the message (docs/akka-notes.md, Serialization).
/// </summary>
public sealed class WireSerializer : SerializerWithStringManifest
{
    /// <summary>The largest payload this serializer writes or reads (checked before MessagePack sees a byte).</summary>
    public const int MaxPayloadBytes = 256 * 1024 * 1024;

    // Codes are part of the wire format: never reuse or change one; add new types with new codes.
    private static readonly (Type Type, string Code)[] Table =
    [
        (typeof(ComputeSlices), "cs"),
        (typeof(ComputeStatistics), "cst"),
        (typeof(EvaluateChunks), "ec"),
        (typeof(SliceResult), "sr"),
        (typeof(StatisticsResult), "str"),
        (typeof(EvaluationResult), "er"),
        (typeof(WorkFailed), "wf"),
        (typeof(WeightsVersion), "wv"),
        (typeof(NormaliserReady), "nr"),
        (typeof(PullWeights), "pw"),
        (typeof(RegisterNode), "rn"),
        (typeof(NodeVerdict), "nv"),
        (typeof(JobFinished), "jf"),
        (typeof(TensorChunk), "tc"),
        (typeof(StartWorker), "sw"),
        (typeof(WorkerStarted), "ws"),
        (typeof(DataEndpoint), "de"),
        (typeof(RangePlan), "rp"),
        (typeof(OwnRange), "or"),
        (typeof(GradientPiece), "gp"),
        (typeof(ReduceRange), "rr"),
        (typeof(RangeReduced), "rd"),
        (typeof(ApplyRange), "ar"),
        (typeof(WeightsRange), "wr"),
        (typeof(SnapshotRange), "sn"),
        (typeof(RangeSnapshot), "rs"),
    ];

    private static readonly FrozenDictionary<Type, string> CodeByType = Table.ToFrozenDictionary(e => e.Type, e => e.Code);
    private static readonly FrozenDictionary<string, Type> TypeByCode =
        Table.ToFrozenDictionary(e => e.Code, e => e.Type, StringComparer.Ordinal);

    // Reference-typed fields of each message: none may be nil (a payload of a shorter message would otherwise decode
    // with nulls in the missing fields, because MessagePack fills absent keys with defaults).
    private static readonly FrozenDictionary<Type, System.Reflection.PropertyInfo[]> RequiredFields = Table.ToFrozenDictionary(
        e => e.Type,
        e => e.Type.GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)
            .Where(p => !p.PropertyType.IsValueType && p.GetIndexParameters().Length == 0 && p.Name != "EqualityContract")
            .ToArray());

    /// <summary>Standard resolver (attributes + our raw tensor formatters) with hostile-payload protections on.</summary>
    public static readonly MessagePackSerializerOptions Options =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    public WireSerializer(ExtendedActorSystem system) : base(system)
    {
    }

    public override int Identifier => WireSerialization.Identifier;

    /// <summary>Every message type and its manifest code.</summary>
    public static IReadOnlyDictionary<Type, string> Manifests => CodeByType;

    /// <summary>The manifest code of a message type, or null when the type is not a known wire message.</summary>
    public static string? ManifestOf(Type type) => CodeByType.GetValueOrDefault(type);

    public override string Manifest(object o) =>
        CodeByType.TryGetValue(o.GetType(), out var code)
            ? code
            : throw new SerializationException(
                $"{o.GetType().FullName} has no wire manifest; add it to {nameof(WireSerializer)}'s table.");

    public override byte[] ToBinary(object obj)
    {
        if (!CodeByType.ContainsKey(obj.GetType()))
        {
            throw new SerializationException(
                $"{obj.GetType().FullName} has no wire manifest; add it to {nameof(WireSerializer)}'s table.");
        }
        byte[] bytes;
        try
        {
            bytes = MessagePackSerializer.Serialize(obj.GetType(), obj, Options);
        }
        catch (MessagePackSerializationException e)
        {
            throw new SerializationException($"Could not serialize {obj.GetType().Name}: {e.Message}", e);
        }
        if (bytes.Length > MaxPayloadBytes)
        {
            throw new SerializationException(
                $"A {obj.GetType().Name} of {bytes.Length} bytes exceeds the wire limit of {MaxPayloadBytes} bytes.");
        }
        return bytes;
    }

    public override object FromBinary(byte[] bytes, string manifest) => Deserialize(bytes, manifest);

    /// <summary>Reads a payload; every failure is a <see cref="SerializationException"/> naming the manifest.</summary>
    public static IWireMessage Deserialize(ReadOnlyMemory<byte> bytes, string manifest)
    {
        if (!TypeByCode.TryGetValue(manifest, out var type))
        {
            throw new SerializationException($"Unknown wire manifest '{Truncate(manifest)}'.");
        }
        if (bytes.Length > MaxPayloadBytes)
        {
            throw new SerializationException(
                $"A '{manifest}' payload of {bytes.Length} bytes exceeds the wire limit of {MaxPayloadBytes} bytes.");
        }
        object? result;
        int consumed;
        try
        {
            var reader = new MessagePackReader(bytes);
            result = MessagePackSerializer.Deserialize(type, ref reader, Options);
            consumed = (int)reader.Consumed;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new SerializationException(
                $"Malformed '{manifest}' ({type.Name}) payload of {bytes.Length} bytes: {e.Message}", e);
        }
        if (consumed != bytes.Length)
        {
            throw new SerializationException(
                $"Malformed '{manifest}' ({type.Name}) payload: {bytes.Length - consumed} trailing bytes after the message.");
        }
        if (result is not IWireMessage message)
        {
            throw new SerializationException($"A '{manifest}' ({type.Name}) payload decoded to nil.");
        }
        foreach (var field in RequiredFields[type])
        {
            if (field.GetValue(message) is null)
            {
                throw new SerializationException($"Malformed '{manifest}' ({type.Name}) payload: {field.Name} is missing or nil.");
            }
        }
        return message;
    }

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "…";
}
