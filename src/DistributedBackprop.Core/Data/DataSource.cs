namespace DistributedBackprop.Core.Data;

/// <summary>
/// Turns the <c>--data</c> argument into a training split and a held-out split:
/// nothing → the embedded sample; a folder → the standard IDX files; a <c>.csv</c> file → its rows split 80/20 in file order.
/// The test split always has the training split's feature count and class count.
/// </summary>
public static class DataSource
{
    public const string TrainImages = "train-images-idx3-ubyte";
    public const string TrainLabels = "train-labels-idx1-ubyte";
    public const string TestImages = "t10k-images-idx3-ubyte";
    public const string TestLabels = "t10k-labels-idx1-ubyte";

    /// <summary>Share of rows that train when one file is split (CSV, a folder with only the t10k pair).</summary>
    public const double TrainFraction = 0.8;

    private static readonly string[] IdxNames = [TrainImages, TrainLabels, TestImages, TestLabels];

    public static DataSplit Load(string? path) => Load(path, CsvReader.DefaultLabelColumn);

    public static DataSplit Load(string? path, string csvLabelColumn)
    {
        if (path is null)
        {
            return EmbeddedSample.Load();
        }
        if (Directory.Exists(path))
        {
            return LoadIdxFolder(path);
        }
        if (File.Exists(path))
        {
            if (path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase))
            {
                return SplitInFileOrder(CsvReader.Read(path, csvLabelColumn), path);
            }
            throw new DistbpInputException(
                $"data: '{path}' is neither a folder of IDX files nor a .csv file; pass the folder that holds {TrainImages}[.gz] and the other IDX files, or a .csv file");
        }
        throw new DistbpInputException(
            $"data: '{path}' does not exist; pass a folder of IDX files or a .csv file, or give no data path to use the embedded sample");
    }

    /// <summary>The first 80% of rows (at least one) train, the rest (at least one) test; rows keep their order.</summary>
    public static DataSplit SplitInFileOrder(Dataset all, string source)
    {
        if (all.Count < 2)
        {
            throw new DistbpInputException(
                $"data: '{source}' has {all.Count} data row(s); at least 2 are needed to split into training and test rows");
        }
        var trainCount = Math.Clamp((int)(all.Count * TrainFraction), 1, all.Count - 1);
        return new DataSplit(
            all.Rows(0, trainCount, $"{source} [train]"),
            all.Rows(trainCount, all.Count - trainCount, $"{source} [test]"));
    }

    private static DataSplit LoadIdxFolder(string folder)
    {
        var found = IdxNames.ToDictionary(n => n, n => Find(folder, n));
        if (found.Values.All(f => f is null))
        {
            throw new DistbpInputException(
                $"data: folder '{folder}' holds none of the IDX files {string.Join(", ", IdxNames)} (each optionally .gz)");
        }

        var hasTrain = found[TrainImages] is not null || found[TrainLabels] is not null;
        var required = hasTrain ? IdxNames : [TestImages, TestLabels];
        var missing = required.Where(n => found[n] is null).ToArray();
        if (missing.Length > 0)
        {
            var hint = hasTrain ? "" : " (without the train-* pair the t10k pair is split 80/20)";
            throw new DistbpInputException(
                $"data: folder '{folder}' is missing {string.Join(", ", missing.Select(m => m + "[.gz]"))}{hint}");
        }

        if (!hasTrain)
        {
            return SplitInFileOrder(IdxReader.Read(found[TestImages]!, found[TestLabels]!), folder);
        }
        var train = IdxReader.Read(found[TrainImages]!, found[TrainLabels]!, name: $"{folder} [train]");
        var test = IdxReader.Read(found[TestImages]!, found[TestLabels]!, train.ClassCount, $"{folder} [test]");
        if (test.FeatureCount != train.FeatureCount)
        {
            throw new DistbpInputException(
                $"data: '{found[TestImages]}' has {test.FeatureCount} pixels per image but '{found[TrainImages]}' has {train.FeatureCount}; training and test images must be the same size");
        }
        return new DataSplit(train, test);
    }

    /// <summary>The plain file if present, else the .gz one, else null.</summary>
    private static string? Find(string folder, string name)
    {
        var plain = Path.Combine(folder, name);
        if (File.Exists(plain))
        {
            return plain;
        }
        var gz = plain + ".gz";
        return File.Exists(gz) ? gz : null;
    }
}
