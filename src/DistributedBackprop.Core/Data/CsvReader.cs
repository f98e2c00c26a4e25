using System.Globalization;

namespace DistributedBackprop.Core.Data;

/// <summary>
/// Reads a classification CSV: a header row, one label column (non-negative integer classes) and every other column a
/// numeric feature (invariant culture). Blank lines are skipped; cells are not quoted. Every problem is a one-line
/// <see cref="DistbpInputException"/> naming the file, and where it applies the line and the column.
/// </summary>
public static class CsvReader
{
    public const string DefaultLabelColumn = "label";

    /// <summary>Labels above this are rejected: they are almost certainly a regression target, not a class.</summary>
    public const int MaxLabel = 65535;

    private const int MaxColumnsInMessage = 12;
    private const int MaxCellInMessage = 40;

    /// <summary>Reads every data row in file order; the class count is the largest label + 1 (at least 2).</summary>
    public static Dataset Read(string path, string labelColumn = DefaultLabelColumn, string? name = null) =>
        Read(path, labelColumn, name, labelRequired: true, out _);

    /// <summary>
    /// Rows to predict on: with a label column its labels are read (any class, even one), without one every column
    /// is a feature and <paramref name="labelled"/> is false (the labels are then all 0).
    /// </summary>
    public static Dataset ReadForPrediction(string path, out bool labelled) =>
        Read(path, DefaultLabelColumn, null, labelRequired: false, out labelled);

    private static Dataset Read(string path, string labelColumn, string? name, bool labelRequired, out bool labelled)
    {
        StreamReader reader;
        try
        {
            reader = new StreamReader(path, detectEncodingFromByteOrderMarks: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw CannotRead(path, e);
        }
        try
        {
            using (reader)
            {
                return Read(reader, path, labelColumn, name ?? path, labelRequired, out labelled);
            }
        }
        catch (IOException e)
        {
            throw CannotRead(path, e);
        }
    }

    private static DistbpInputException CannotRead(string path, Exception e) =>
        new($"data: '{path}' " + (e is FileNotFoundException or DirectoryNotFoundException
            ? "does not exist"
            : $"cannot be read: {InputFile.OneLine(e.Message)}"));

    internal static Dataset Read(TextReader reader, string source, string labelColumn, string name) =>
        Read(reader, source, labelColumn, name, labelRequired: true, out _);

    private static Dataset Read(TextReader reader, string source, string labelColumn, string name, bool labelRequired,
        out bool labelled)
    {
        var lineNumber = 0;
        string? line;
        do
        {
            line = reader.ReadLine();
            lineNumber++;
        }
        while (line is not null && string.IsNullOrWhiteSpace(line));
        if (line is null)
        {
            throw new DistbpInputException(
                $"data: '{source}' is empty; a CSV needs a header row naming its columns, one of them '{labelColumn}'");
        }

        var header = line.Split(',').Select(c => c.Trim().Trim('"')).ToArray();
        var labelIndex = labelRequired || header.Contains(labelColumn) ? LabelIndex(header, source, labelColumn) : -1;
        labelled = labelIndex >= 0;
        if (!labelled && header.All(h => float.TryParse(h, NumberStyles.Float, CultureInfo.InvariantCulture, out _)))
        {
            // Taken for a header, the first row of a header-less file would silently go missing.
            throw new DistbpInputException(
                $"data: '{source}' starts with numbers, not a header row; add a header row naming the columns (the label column, if any, '{labelColumn}')");
        }
        var featureCount = labelled ? header.Length - 1 : header.Length;
        if (featureCount == 0)
        {
            throw new DistbpInputException($"data: '{source}' has no feature columns besides '{labelColumn}'");
        }

        var features = new List<float>();
        var labels = new List<int>();
        while ((line = reader.ReadLine()) is not null)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }
            var cells = line.Split(',');
            if (cells.Length != header.Length)
            {
                throw new DistbpInputException(
                    $"data: '{source}' line {lineNumber} has {cells.Length} cells but the header has {header.Length} columns");
            }
            if (!labelled)
            {
                labels.Add(0);
            }
            for (var c = 0; c < cells.Length; c++)
            {
                var cell = cells[c].Trim();
                if (c == labelIndex)
                {
                    labels.Add(ParseLabel(cell, source, lineNumber, header[c]));
                }
                else
                {
                    features.Add(ParseFeature(cell, source, lineNumber, header[c]));
                }
            }
        }
        if (labels.Count == 0)
        {
            throw new DistbpInputException($"data: '{source}' has a header row but no data rows");
        }

        var classCount = labels.Max() + 1;
        if (classCount < 2 && labelRequired)
        {
            throw new DistbpInputException(
                $"data: '{source}' has only class 0 in column '{labelColumn}'; classification needs labels of at least 2 classes");
        }
        return new Dataset(name, features.ToArray(), labels.ToArray(), featureCount, classCount);
    }

    private static int LabelIndex(string[] header, string source, string labelColumn)
    {
        var matches = Enumerable.Range(0, header.Length).Where(i => header[i] == labelColumn).ToArray();
        if (matches.Length == 1)
        {
            return matches[0];
        }
        if (matches.Length > 1)
        {
            throw new DistbpInputException(
                $"data: '{source}' has {matches.Length} columns named '{labelColumn}' (columns {string.Join(", ", matches.Select(i => i + 1))}); exactly one label column is allowed");
        }
        var shown = string.Join(", ", header.Take(MaxColumnsInMessage).Select(h => $"'{h}'"));
        var more = header.Length > MaxColumnsInMessage ? $" and {header.Length - MaxColumnsInMessage} more" : "";
        throw new DistbpInputException(
            $"data: '{source}' has no label column '{labelColumn}'; its header names {shown}{more}; name the label column '{labelColumn}'");
    }

    private static float ParseFeature(string cell, string source, int line, string column)
    {
        if (cell.Length == 0)
        {
            throw new DistbpInputException($"data: '{source}' line {line}, column '{column}': the cell is empty; every feature must be a number");
        }
        if (!float.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
        {
            throw new DistbpInputException($"data: '{source}' line {line}, column '{column}': '{Shorten(cell)}' is not a number");
        }
        if (!float.IsFinite(value))
        {
            throw new DistbpInputException(
                $"data: '{source}' line {line}, column '{column}': '{Shorten(cell)}' is not a finite number; remove or impute the value");
        }
        return value;
    }

    private static int ParseLabel(string cell, string source, int line, string column)
    {
        // Integral values written as floats ("3.0", as pandas does) are accepted; anything else is not a class.
        if (double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
            && value >= 0 && value == Math.Floor(value))
        {
            if (value > MaxLabel)
            {
                throw new DistbpInputException(
                    $"data: '{source}' line {line}, column '{column}': label {Shorten(cell)} is above the largest supported class {MaxLabel}; labels must be class numbers 0, 1, 2, ...");
            }
            return (int)value;
        }
        throw new DistbpInputException(
            $"data: '{source}' line {line}, column '{column}': '{Shorten(cell)}' is not a class label; labels must be non-negative integers (0, 1, 2, ...)");
    }

    private static string Shorten(string cell) => cell.Length <= MaxCellInMessage ? cell : cell[..MaxCellInMessage] + "...";
}
