using System.Buffers.Binary;

namespace DistributedBackprop.Core.Data;

/// <summary>Images read from one IDX image file: <see cref="Pixels"/> is Count × Rows × Columns, raw values 0..255.</summary>
public sealed record IdxImages(int Count, int Rows, int Columns, float[] Pixels)
{
    public int PixelsPerImage => Rows * Columns;
}

/// <summary>
/// Reads MNIST-style IDX files (plain or gzipped; gzip is recognised by its magic bytes, not by the name).
/// Everything is validated: magic, dimensions, exact file length, image/label pairing, label range.
/// Every problem is a one-line <see cref="DistbpInputException"/> naming the file.
/// </summary>
public static class IdxReader
{
    /// <summary>IDX magic: 0x00 0x00, type 0x08 (unsigned byte), 3 dimensions.</summary>
    public const uint ImageMagic = 0x00000803;

    /// <summary>IDX magic: 0x00 0x00, type 0x08 (unsigned byte), 1 dimension.</summary>
    public const uint LabelMagic = 0x00000801;

    private const int ImageHeaderBytes = 16;
    private const int LabelHeaderBytes = 8;

    /// <summary>
    /// Reads an image file and its label file into one data set. With <paramref name="classCount"/> the labels must lie
    /// in 0..classCount-1 (used to hold a test split to the training split's classes); without it the class count is
    /// the largest label + 1 and must be at least 2.
    /// </summary>
    public static Dataset Read(string imagesPath, string labelsPath, int? classCount = null, string? name = null) =>
        Pair(ReadImages(imagesPath), imagesPath, ReadLabels(labelsPath), labelsPath, classCount, name ?? imagesPath);

    public static IdxImages ReadImages(string path) => ParseImages(InputFile.ReadAllBytes(path), path);

    public static byte[] ReadLabels(string path) => ParseLabels(InputFile.ReadAllBytes(path), path);

    internal static Dataset Read(Stream images, string imagesSource, Stream labels, string labelsSource, string name) =>
        Pair(
            ParseImages(InputFile.ReadAllBytes(images, imagesSource), imagesSource),
            imagesSource,
            ParseLabels(InputFile.ReadAllBytes(labels, labelsSource), labelsSource),
            labelsSource,
            classCount: null,
            name);

    internal static IdxImages ParseImages(byte[] bytes, string source)
    {
        CheckHeader(bytes, source, ImageMagic, ImageHeaderBytes, "image");
        var count = Dimension(bytes, 4, source, "image count");
        var rows = Dimension(bytes, 8, source, "row count");
        var columns = Dimension(bytes, 12, source, "column count");
        var pixels = (long)count * rows * columns;
        CheckLength(bytes.Length - ImageHeaderBytes, pixels, source, $"{count} images of {rows}x{columns} = {pixels} pixel bytes", $"{count} images");

        var values = new float[pixels];
        var body = bytes.AsSpan(ImageHeaderBytes);
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = body[i];
        }
        return new IdxImages(count, rows, columns, values);
    }

    internal static byte[] ParseLabels(byte[] bytes, string source)
    {
        CheckHeader(bytes, source, LabelMagic, LabelHeaderBytes, "label");
        var count = Dimension(bytes, 4, source, "label count");
        CheckLength(bytes.Length - LabelHeaderBytes, count, source, $"{count} labels", $"{count} labels");
        return bytes.AsSpan(LabelHeaderBytes).ToArray();
    }

    internal static Dataset Pair(IdxImages images, string imagesSource, byte[] labels, string labelsSource, int? classCount, string name)
    {
        if (images.Count != labels.Length)
        {
            throw new DistbpInputException(
                $"data: '{imagesSource}' holds {images.Count} images but '{labelsSource}' holds {labels.Length} labels; the two files must pair one to one");
        }

        var max = 0;
        var min = int.MaxValue;
        for (var i = 0; i < labels.Length; i++)
        {
            max = Math.Max(max, labels[i]);
            min = Math.Min(min, labels[i]);
            if (classCount is { } allowed && labels[i] >= allowed)
            {
                throw new DistbpInputException(
                    $"data: '{labelsSource}' has label {labels[i]} at index {i}, outside the expected classes 0..{allowed - 1}");
            }
        }
        var classes = classCount ?? max + 1;
        if (classCount is null && classes < 2)
        {
            throw new DistbpInputException(
                $"data: '{labelsSource}' has only class {min} (every label is {min}); classification needs labels of at least 2 classes");
        }

        var ints = new int[labels.Length];
        for (var i = 0; i < labels.Length; i++)
        {
            ints[i] = labels[i];
        }
        return new Dataset(name, images.Pixels, ints, images.PixelsPerImage, classes);
    }

    private static void CheckHeader(byte[] bytes, string source, uint expected, int headerBytes, string kind)
    {
        if (bytes.Length < 4)
        {
            throw new DistbpInputException(
                $"data: '{source}' is too short to be an IDX {kind} file: {bytes.Length} bytes, the header alone needs {headerBytes}");
        }
        var magic = BinaryPrimitives.ReadUInt32BigEndian(bytes);
        if (magic != expected)
        {
            var other = expected == ImageMagic ? LabelMagic : ImageMagic;
            var what = magic == other
                ? $"is an IDX {(kind == "image" ? "label" : "image")} file (magic 0x{magic:X8}), not an IDX {kind} file"
                : $"has magic 0x{magic:X8}, not an IDX {kind} file";
            throw new DistbpInputException($"data: '{source}' {what}: expected magic 0x{expected:X8}; check which file is which");
        }
        if (bytes.Length < headerBytes)
        {
            throw new DistbpInputException(
                $"data: '{source}' is truncated: {bytes.Length} bytes, the IDX {kind} header alone needs {headerBytes}");
        }
    }

    private static int Dimension(byte[] bytes, int offset, string source, string what)
    {
        var value = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(offset));
        if (value <= 0)
        {
            throw new DistbpInputException($"data: '{source}' has {what} {value} in its header; it must be positive");
        }
        return value;
    }

    private static void CheckLength(long held, long declared, string source, string declaredText, string declaredShort)
    {
        if (held < declared)
        {
            throw new DistbpInputException($"data: '{source}' is truncated: header says {declaredText} but the file holds {held}");
        }
        if (held > declared)
        {
            throw new DistbpInputException(
                $"data: '{source}' has {held - declared} trailing bytes after the {declaredShort} its header declares; the file is corrupt or not what its header says");
        }
    }
}
