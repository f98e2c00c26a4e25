namespace DistributedBackprop.Core.Data;

/// <summary>Rows to predict on, raw (not normalised), in file order; <see cref="Labelled"/> when the input carries labels.</summary>
public sealed record PredictionRows(Dataset Rows, bool Labelled);

/// <summary>
/// Reads what <c>distbp predict --input</c> names, with the readers training uses: a <c>.csv</c> file (a header row; a
/// <c>label</c> column is optional and never a feature) or an IDX image file (<c>.gz</c> or not) with an optional IDX
/// label file. The rows must have the model's feature count and the labels lie in its classes.
/// </summary>
public static class PredictionInput
{
    public static PredictionRows Load(string path, string? labelsPath, int featureCount, int classCount)
    {
        if (Directory.Exists(path))
        {
            throw new DistbpInputException(
                "Input", $"'{path}' is a folder; pass one IDX image file (e.g. {DataSource.TestImages}.gz) or a .csv file");
        }
        if (!File.Exists(path))
        {
            throw new DistbpInputException("Input", $"'{path}' does not exist; pass an IDX image file or a .csv file");
        }
        var isCsv = path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase);
        if (isCsv && labelsPath is not null)
        {
            throw new DistbpInputException(
                "Labels", $"only for IDX input; a CSV carries its labels in its '{CsvReader.DefaultLabelColumn}' column");
        }

        Dataset rows;
        bool labelled;
        if (isCsv)
        {
            rows = CsvReader.ReadForPrediction(path, out labelled);
        }
        else
        {
            var images = ReadImages(path);
            labelled = labelsPath is not null;
            rows = labelsPath is null
                ? new Dataset(path, images.Pixels, new int[images.Count], images.PixelsPerImage, classCount)
                // Pairing holds the labels to the model's classes.
                : IdxReader.Pair(images, path, IdxReader.ReadLabels(labelsPath), labelsPath, classCount, path);
        }

        if (rows.FeatureCount != featureCount)
        {
            throw new DistbpInputException(
                "Input", $"'{path}' has {rows.FeatureCount} features per row but the model takes {featureCount}; pass data shaped like the model's training data");
        }
        if (labelled && rows.ClassCount > classCount)
        {
            var row = Array.FindIndex(rows.Labels, l => l >= classCount);
            throw new DistbpInputException(
                "Input", $"'{path}' has label {rows.Labels[row]} in data row {row + 1}, outside the model's classes 0..{classCount - 1}");
        }
        return new PredictionRows(rows, labelled);
    }

    private static IdxImages ReadImages(string path)
    {
        try
        {
            return IdxReader.ReadImages(path);
        }
        catch (DistbpInputException e)
        {
            // Anything that is not a .csv is read as IDX; say so, in case it was meant to be a CSV.
            throw new DistbpInputException($"{e.Message}; the input must be an IDX image file or a .csv file");
        }
    }
}
