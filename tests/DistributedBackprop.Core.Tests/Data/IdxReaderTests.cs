using DistributedBackprop.Core.Data;
using Xunit;

namespace DistributedBackprop.Core.Tests.Data;

public sealed class IdxReaderTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Plain_image_and_label_files_read_as_raw_pixel_floats_and_int_labels()
    {
        var images = _dir.Write("images", Idx.Images(4, 2, 3));
        var labels = _dir.Write("labels", Idx.Labels([2, 0, 1, 2]));

        var data = IdxReader.Read(images, labels);

        Assert.Equal(4, data.Count);
        Assert.Equal(6, data.FeatureCount);
        Assert.Equal(3, data.ClassCount);
        Assert.Equal([2, 0, 1, 2], data.Labels);
        Assert.Equal(Enumerable.Range(0, 24).Select(i => (float)(i * 7 % 256)), data.Features);
    }

    [Fact]
    public void Gzipped_files_read_the_same_as_plain_files()
    {
        var plain = IdxReader.Read(_dir.Write("i", Idx.Images(5, 4, 4)), _dir.Write("l", Idx.Labels(5)));
        var gzipped = IdxReader.Read(_dir.Write("i.gz", Idx.Gzip(Idx.Images(5, 4, 4))), _dir.Write("l.gz", Idx.Gzip(Idx.Labels(5))));

        Assert.Equal(plain.Features, gzipped.Features);
        Assert.Equal(plain.Labels, gzipped.Labels);
    }

    [Fact]
    public void Gzip_is_detected_by_its_magic_bytes_not_by_the_file_name()
    {
        var images = _dir.Write("images-no-extension", Idx.Gzip(Idx.Images(3, 2, 2)));
        var labels = _dir.Write("labels.gz", Idx.Labels(3));

        var data = IdxReader.Read(images, labels);

        Assert.Equal(3, data.Count);
        Assert.Equal(4, data.FeatureCount);
    }

    [Fact]
    public void Class_count_is_the_largest_label_plus_one()
    {
        var data = IdxReader.Read(_dir.Write("i", Idx.Images(3, 1, 1)), _dir.Write("l", Idx.Labels([0, 6, 1])));

        Assert.Equal(7, data.ClassCount);
    }

    [Fact]
    public void Image_file_with_wrong_magic_is_rejected_naming_the_file()
    {
        var images = _dir.Write("images", Idx.Images(2, 2, 2, magic: 0x00000903));
        var labels = _dir.Write("labels", Idx.Labels(2));

        Expect.InputError(() => IdxReader.Read(images, labels), $"'{images}'", "0x00000903", "0x00000803");
    }

    [Fact]
    public void Label_file_given_as_the_image_file_is_rejected_as_a_label_file()
    {
        var labels = _dir.Write("labels", Idx.Labels(2));

        Expect.InputError(() => IdxReader.ReadImages(labels), $"'{labels}'", "is an IDX label file");
    }

    [Fact]
    public void Label_file_with_wrong_magic_is_rejected_naming_the_file()
    {
        var labels = _dir.Write("labels", Idx.Labels([0, 1], magic: 0x12345678));

        Expect.InputError(() => IdxReader.ReadLabels(labels), $"'{labels}'", "0x12345678", "0x00000801");
    }

    [Fact]
    public void Truncated_label_file_is_rejected_naming_the_file()
    {
        var full = Idx.Labels(6);
        var labels = _dir.Write("train-labels-idx1-ubyte", full[..^1]);

        Expect.InputError(() => IdxReader.ReadLabels(labels), $"data: '{labels}' is truncated: header says 6 labels but the file holds 5");
    }

    [Fact]
    public void Truncated_image_file_is_rejected_naming_the_file()
    {
        var full = Idx.Images(3, 2, 2);
        var images = _dir.Write("images", full[..^3]);

        Expect.InputError(() => IdxReader.ReadImages(images), $"'{images}' is truncated", "3 images of 2x2", "holds 9");
    }

    [Fact]
    public void Truncated_gzipped_image_file_is_rejected_naming_the_file()
    {
        var images = _dir.Write("images.gz", Idx.Gzip(Idx.Images(3, 2, 2)[..^3]));

        Expect.InputError(() => IdxReader.ReadImages(images), $"'{images}' is truncated");
    }

    [Fact]
    public void File_shorter_than_its_header_is_rejected_naming_the_file()
    {
        var images = _dir.Write("images", Idx.Images(3, 2, 2)[..10]);

        Expect.InputError(() => IdxReader.ReadImages(images), $"'{images}' is truncated", "header alone needs 16");
    }

    [Fact]
    public void Image_file_with_trailing_bytes_is_rejected_naming_the_file()
    {
        var images = _dir.Write("images", [.. Idx.Images(3, 2, 2), 1, 2]);

        Expect.InputError(() => IdxReader.ReadImages(images), $"'{images}' has 2 trailing bytes");
    }

    [Fact]
    public void Label_file_with_trailing_bytes_is_rejected_naming_the_file()
    {
        var labels = _dir.Write("labels", [.. Idx.Labels(3), 0]);

        Expect.InputError(() => IdxReader.ReadLabels(labels), $"'{labels}' has 1 trailing bytes after the 3 labels");
    }

    [Theory]
    [InlineData(0, 2, 2, "image count 0")]
    [InlineData(2, 0, 2, "row count 0")]
    [InlineData(2, 2, -1, "column count -1")]
    public void Non_positive_image_dimensions_are_rejected_naming_the_file(int count, int rows, int columns, string what)
    {
        var bytes = Idx.Images(1, 1, 1);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), rows);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12), columns);
        var images = _dir.Write("images", bytes);

        Expect.InputError(() => IdxReader.ReadImages(images), $"'{images}'", what, "must be positive");
    }

    [Fact]
    public void Image_and_label_count_mismatch_is_rejected_naming_both_files()
    {
        var images = _dir.Write("images", Idx.Images(4, 2, 2));
        var labels = _dir.Write("labels", Idx.Labels(3));

        Expect.InputError(() => IdxReader.Read(images, labels), $"'{images}' holds 4 images", $"'{labels}' holds 3 labels");
    }

    [Fact]
    public void Label_outside_the_given_class_count_is_rejected_naming_the_file_and_index()
    {
        var images = _dir.Write("images", Idx.Images(3, 1, 1));
        var labels = _dir.Write("labels", Idx.Labels([1, 9, 0]));

        Expect.InputError(() => IdxReader.Read(images, labels, classCount: 5), $"'{labels}' has label 9 at index 1", "0..4");
    }

    [Fact]
    public void Labels_of_a_single_class_are_rejected()
    {
        var images = _dir.Write("images", Idx.Images(3, 1, 1));
        var labels = _dir.Write("labels", Idx.Labels([0, 0, 0]));

        Expect.InputError(() => IdxReader.Read(images, labels), $"'{labels}'", "at least 2 classes");
    }

    [Fact]
    public void Corrupt_gzip_is_rejected_naming_the_file()
    {
        var gz = Idx.Gzip(Idx.Images(3, 2, 2));
        for (var i = 10; i < gz.Length - 8; i++)
        {
            gz[i] ^= 0x5a;
        }
        var images = _dir.Write("images.gz", gz);

        Expect.InputError(() => IdxReader.ReadImages(images), $"'{images}'");
    }

    [Fact]
    public void Missing_file_is_rejected_naming_the_path()
    {
        var images = Path.Combine(_dir.Path, "nope-images");

        Expect.InputError(() => IdxReader.ReadImages(images), $"'{images}' does not exist");
    }
}
