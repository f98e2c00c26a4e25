using System.Buffers.Binary;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Losses;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;

namespace DistributedBackprop.Node.Tests.Export;

/// <summary>
/// Tiny models of every kind the exporter handles, trained in-process on the embedded sample (one epoch each, a fraction
/// of a second) and written as model files; their held-out split is written as IDX files for <c>distbp predict</c>.
/// </summary>
public sealed class TrainedModels : IDisposable
{
    private static readonly TrainingOptions Tiny = new()
    {
        Layers = "784-32-10",
        Epochs = 1,
        Batch = 200,
        Slices = 4,
        Threads = 2,
        Seed = 5,
    };

    public static readonly IReadOnlyDictionary<string, TrainingOptions> Configurations = new Dictionary<string, TrainingOptions>
    {
        ["relu-cross-entropy"] = Tiny,
        ["tanh"] = Tiny with { Layers = "784-32-16-10", Activation = "tanh" },
        ["sigmoid"] = Tiny with { Activation = "sigmoid", LearningRate = 0.5f },
        ["leaky-relu"] = Tiny with { Activation = "leaky-relu" },
        ["batch-norm"] = Tiny with { Layers = "784-32-16-10", BatchNorm = true },
        ["dropout"] = Tiny with { Dropout = 0.3f },
        ["mse"] = Tiny with { Loss = "mse", Activation = "sigmoid", LearningRate = 0.5f },
        ["batch-norm-leaky-dropout-mse"] = Tiny with
        {
            Layers = "784-24-12-10",
            Activation = "leaky-relu",
            BatchNorm = true,
            Dropout = 0.2f,
            Loss = "mse",
        },
    };

    public static TheoryData<string> Names => new(Configurations.Keys);

    public TrainedModels()
    {
        Data = EmbeddedSample.Load();
        foreach (var (name, options) in Configurations)
        {
            var setup = TrainingSetup.Create(options, Data);
            var trainer = new LocalTrainer(setup);
            trainer.Run();
            ModelFile.Write(ModelPath(name), CheckpointStore.Snapshot(setup, trainer.State, "model"));
        }
        TestImagesPath = Folder.Write("held-out/t10k-images-idx3-ubyte", IdxImages(Data.Test, 28, 28));
        TestLabelsPath = Folder.Write("held-out/t10k-labels-idx1-ubyte", IdxLabels(Data.Test));
    }

    public TempFolder Folder { get; } = new();

    /// <summary>The embedded sample, raw (not normalised).</summary>
    public DataSplit Data { get; }

    public string TestImagesPath { get; }
    public string TestLabelsPath { get; }

    public string ModelPath(string name) => Folder.File($"models/{name}.distbp");

    /// <summary>
    /// What distbp itself computes for each held-out row, rows × classes: the network's inference outputs over all rows
    /// in one pass, then softmax for cross-entropy models.
    /// </summary>
    public static float[] DistbpOutputs(ModelSnapshot model, Dataset raw)
    {
        var network = new Network(model.Header.Spec);
        var rows = model.Normaliser.Apply(raw);
        var indices = Enumerable.Range(0, rows.Count).ToArray();
        var outputs = SliceComputer.Predict(network, model.Weights, rows, indices, new Workspace(network, rows.Count)).ToArray();
        if (network.Loss is SoftmaxCrossEntropy)
        {
            var classes = network.OutputSize;
            for (var i = 0; i < rows.Count; i++)
            {
                var row = outputs.AsSpan(i * classes, classes);
                SoftmaxCrossEntropy.Probabilities(row.ToArray(), row);
            }
        }
        return outputs;
    }

    public static byte[] IdxImages(Dataset data, int rows, int columns)
    {
        var bytes = new byte[16 + data.Features.Length];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, IdxReader.ImageMagic);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), data.Count);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12), columns);
        for (var i = 0; i < data.Features.Length; i++)
        {
            bytes[16 + i] = checked((byte)data.Features[i]);
        }
        return bytes;
    }

    public static byte[] IdxLabels(Dataset data)
    {
        var bytes = new byte[8 + data.Count];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, IdxReader.LabelMagic);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), data.Count);
        for (var i = 0; i < data.Count; i++)
        {
            bytes[8 + i] = checked((byte)data.Labels[i]);
        }
        return bytes;
    }

    public void Dispose() => Folder.Dispose();
}

[CollectionDefinition(Name)]
public sealed class TrainedModelsCollection : ICollectionFixture<TrainedModels>
{
    public const string Name = "trained models";
}
