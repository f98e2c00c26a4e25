namespace DistributedBackprop.Core.Data;

/// <summary>
/// The data set built into the Core assembly: Fashion-MNIST's 10,000-image test split (MIT, Zalando SE; see
/// data/README.md). Split in file order: the first 8,000 images train, the last 2,000 are held out.
/// </summary>
public static class EmbeddedSample
{
    public const string ImagesResource = "DistributedBackprop.Data.FashionMnist.t10k-images-idx3-ubyte.gz";
    public const string LabelsResource = "DistributedBackprop.Data.FashionMnist.t10k-labels-idx1-ubyte.gz";
    public const string Name = "fashion-mnist-sample";
    public const int TrainCount = 8000;
    public const int TestCount = 2000;

    /// <summary>Fashion-MNIST's class names, indexed by label.</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    // Parsed once per process; callers always get copies, so normalising in place cannot leak between loads.
    private static readonly Lazy<Dataset> All = new(ReadAll);

    /// <summary>Fresh copies of the 8,000 training and 2,000 test images (raw pixels 0..255, 784 features, 10 classes).</summary>
    public static DataSplit Load() =>
        new(All.Value.Rows(0, TrainCount, $"{Name} [train]"), All.Value.Rows(TrainCount, TestCount, $"{Name} [test]"));

    private static Dataset ReadAll()
    {
        var assembly = typeof(EmbeddedSample).Assembly;
        using var images = assembly.GetManifestResourceStream(ImagesResource)
            ?? throw new InvalidOperationException($"The Core assembly lacks the embedded resource {ImagesResource}.");
        using var labels = assembly.GetManifestResourceStream(LabelsResource)
            ?? throw new InvalidOperationException($"The Core assembly lacks the embedded resource {LabelsResource}.");
        var all = IdxReader.Read(images, $"embedded:{ImagesResource}", labels, $"embedded:{LabelsResource}", Name);
        if (all.Count != TrainCount + TestCount)
        {
            throw new InvalidOperationException($"The embedded sample holds {all.Count} images, expected {TrainCount + TestCount}.");
        }
        return all;
    }
}
