using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Model;

namespace DistributedBackprop.Core.Checkpoints;

/// <summary>What a model or checkpoint file says about itself, stored as JSON in its header.</summary>
public sealed record ModelHeader
{
    public required string Kind { get; init; }
    public required int[] Widths { get; init; }
    public required string Activation { get; init; }
    public required string Loss { get; init; }
    public float DropoutRate { get; init; }
    public bool BatchNorm { get; init; }
    public int FeatureCount { get; init; }
    public long Step { get; init; }
    public long AppliedUpdates { get; init; }
    public float LearningRateScale { get; init; } = 1f;
    public string? Optimizer { get; init; }
    public int OptimizerStateLength { get; init; }
    /// <summary>Hash of the training options that produced it; a resume with other options is refused.</summary>
    public string? ConfigHash { get; init; }
    public string? WeightsSha256 { get; init; }
    /// <summary>The options that produced it, so a run can be resumed from the checkpoint folder alone.</summary>
    public Training.TrainingOptions? Options { get; init; }

    public NetworkSpec Spec => new(Widths, Activation, Loss, DropoutRate, BatchNorm);
}

/// <summary>A trained network with its feature normaliser, and for checkpoints the optimizer state and step.</summary>
public sealed record ModelSnapshot(ModelHeader Header, FeatureNormaliser Normaliser, ModelWeights Weights,
    float[] OptimizerState);

/// <summary>
/// The file format of models and checkpoints: magic "DISTBPMF", format version, header JSON, normaliser mean and std,
/// parameters, buffers, optimizer state (float32, little-endian), then a SHA-256 of everything before it.
/// Written to a temp file and renamed, so a reader never sees half a file; a truncated, corrupt or foreign file is
/// refused with a message that names it.
/// </summary>
public static class ModelFile
{
    public const int FormatVersion = 1;
    private static readonly byte[] Magic = "DISTBPMF"u8.ToArray();

    public static void Write(string path, ModelSnapshot snapshot) => AtomicWrite.Bytes(path, Serialize(snapshot));

    public static byte[] Serialize(ModelSnapshot snapshot)
    {
        var header = snapshot.Header with
        {
            FeatureCount = snapshot.Normaliser.Mean.Length,
            OptimizerStateLength = snapshot.OptimizerState.Length,
        };
        var json = JsonSerializer.SerializeToUtf8Bytes(header, JsonOptions);
        using var body = new MemoryStream();
        body.Write(Magic);
        WriteInt(body, FormatVersion);
        WriteInt(body, json.Length);
        body.Write(json);
        WriteFloats(body, snapshot.Normaliser.Mean);
        WriteFloats(body, snapshot.Normaliser.Std);
        WriteInt(body, snapshot.Weights.Parameters.Length);
        WriteFloats(body, snapshot.Weights.Parameters);
        WriteInt(body, snapshot.Weights.Buffers.Length);
        WriteFloats(body, snapshot.Weights.Buffers);
        WriteFloats(body, snapshot.OptimizerState);
        var checksum = SHA256.HashData(body.GetBuffer().AsSpan(0, (int)body.Length));
        body.Write(checksum);
        return body.ToArray();
    }

    /// <summary>Reads and verifies a file; <paramref name="role"/> names the input in errors (the command line passes its flag).</summary>
    public static ModelSnapshot Read(string path, string role = "model")
    {
        byte[] bytes;
        try
        {
            var length = new FileInfo(path).Length;
            var available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            if (length > Math.Min(available / 2, Array.MaxLength))
            {
                throw new DistbpInputException(
                    $"{role}: '{path}' is {length:N0} bytes, more than this process can load (it may use {available:N0} bytes).");
            }
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DistbpInputException($"{role}: cannot read '{path}': {e.Message}");
        }
        return Deserialize(bytes, path, role);
    }

    public static ModelSnapshot Deserialize(ReadOnlySpan<byte> bytes, string path, string role)
    {
        string Bad(string what) => $"{role}: '{path}' {what}";
        if (bytes.Length < Magic.Length + 8 + 32 || !bytes[..Magic.Length].SequenceEqual(Magic))
        {
            throw new DistbpInputException(Bad("is not a distbp model file (no DISTBPMF signature)."));
        }
        var content = bytes[..^32];
        if (!SHA256.HashData(content).AsSpan().SequenceEqual(bytes[^32..]))
        {
            throw new DistbpInputException(Bad("is corrupt or truncated (checksum mismatch); use another model or checkpoint."));
        }
        var reader = new SpanReader(content[Magic.Length..]);
        var version = reader.Int();
        if (version != FormatVersion)
        {
            throw new DistbpInputException(Bad($"has format version {version}; this distbp reads version {FormatVersion}."));
        }
        try
        {
            return Parse(ref reader, Bad);
        }
        catch (Exception e) when (e is not DistbpInputException and not OutOfMemoryException)
        {
            // The checksum only proves the file is what its writer wrote, not that the writer was distbp: whatever a
            // crafted header makes the parse throw is the file's fault, named as such.
            throw new DistbpInputException(Bad($"has an invalid header ({e.GetType().Name}: {e.Message})."));
        }
    }

    private static ModelSnapshot Parse(ref SpanReader reader, Func<string, string> bad)
    {
        ModelHeader header;
        try
        {
            header = JsonSerializer.Deserialize<ModelHeader>(reader.Bytes(reader.Int()), JsonOptions)
                     ?? throw new JsonException("empty header");
        }
        catch (Exception e) when (e is JsonException or ArgumentException or FormatException)
        {
            throw new DistbpInputException(bad($"has an unreadable header ({e.Message})."));
        }
        if (header.Kind is null || header.Widths is null || header.Activation is null || header.Loss is null)
        {
            throw new DistbpInputException(bad("has a header without its kind, widths, activation or loss."));
        }
        if (header.FeatureCount <= 0 || header.OptimizerStateLength < 0 || header.Step < 0 || header.AppliedUpdates < 0
            || header.AppliedUpdates > header.Step || !(header.LearningRateScale >= 0f && header.LearningRateScale <= 1f))
        {
            throw new DistbpInputException(bad("has a header with impossible counts (features, optimizer state, step or learning-rate scale)."));
        }
        Network network;
        try
        {
            network = new Network(header.Spec);
        }
        catch (Exception e) when (e is DistbpInputException or ArgumentException)
        {
            throw new DistbpInputException(bad($"describes an invalid network ({e.Message})."));
        }
        float[] mean, std, parameters, buffers, optimizerState;
        try
        {
            mean = reader.Floats(header.FeatureCount);
            std = reader.Floats(header.FeatureCount);
            parameters = reader.Floats(reader.Int());
            buffers = reader.Floats(reader.Int());
            optimizerState = reader.Floats(header.OptimizerStateLength);
        }
        catch (FormatException)
        {
            throw new DistbpInputException(bad("is shorter than its header says."));
        }
        if (!reader.AtEnd || parameters.Length != network.ParameterCount || buffers.Length != network.BufferCount
            || header.FeatureCount != network.InputSize
            || (optimizerState.Length != 0 && optimizerState.Length % network.ParameterCount != 0))
        {
            throw new DistbpInputException(bad("does not match the network its header describes."));
        }
        FeatureNormaliser normaliser;
        try
        {
            normaliser = new FeatureNormaliser(mean, std);
        }
        catch (ArgumentException e)
        {
            throw new DistbpInputException(bad($"has an invalid feature normaliser ({e.Message})."));
        }
        return new ModelSnapshot(header, normaliser, new ModelWeights(parameters, buffers), optimizerState);
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    private static void WriteInt(Stream stream, int value)
    {
        Span<byte> buffer = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(buffer, value);
        stream.Write(buffer);
    }

    private static void WriteFloats(Stream stream, float[] values)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Model files are little-endian; big-endian hosts are not supported.");
        }
        stream.Write(MemoryMarshal.AsBytes(values.AsSpan()));
    }

    private ref struct SpanReader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _position;

        public readonly bool AtEnd => _position == _data.Length;

        public int Int()
        {
            var value = BinaryPrimitives.ReadInt32LittleEndian(Bytes(4));
            return value;
        }

        public ReadOnlySpan<byte> Bytes(int count)
        {
            if (count < 0 || count > _data.Length - _position)
            {
                throw new FormatException();
            }
            var slice = _data.Slice(_position, count);
            _position += count;
            return slice;
        }

        public float[] Floats(int count)
        {
            if (count < 0 || count > (_data.Length - _position) / 4)
            {
                throw new FormatException();
            }
            return MemoryMarshal.Cast<byte, float>(Bytes(count * 4)).ToArray();
        }
    }
}
