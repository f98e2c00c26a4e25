using DistributedBackprop.Core.Data;
using Xunit;

namespace DistributedBackprop.Core.Tests.Data;

public sealed class DataSourceTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Null_path_loads_the_embedded_sample()
    {
        var split = DataSource.Load(null);

        Assert.Equal(EmbeddedSample.TrainCount, split.Train.Count);
        Assert.Equal(EmbeddedSample.TestCount, split.Test.Count);
    }

    [Fact]
    public void Folder_with_train_and_t10k_files_trains_on_train_and_tests_on_t10k()
    {
        _dir.Write(DataSource.TrainImages, Idx.Images(6, 3, 3, i => 1));
        _dir.Write(DataSource.TrainLabels, Idx.Labels(6, classes: 4));
        _dir.Write(DataSource.TestImages, Idx.Images(2, 3, 3, i => 2));
        _dir.Write(DataSource.TestLabels, Idx.Labels([0, 1]));

        var split = DataSource.Load(_dir.Path);

        Assert.Equal(6, split.Train.Count);
        Assert.Equal(2, split.Test.Count);
        Assert.All(split.Train.Features, v => Assert.Equal(1f, v));
        Assert.All(split.Test.Features, v => Assert.Equal(2f, v));
        Assert.Equal(9, split.Test.FeatureCount);
        Assert.Equal(4, split.Train.ClassCount);
        Assert.Equal(4, split.Test.ClassCount);
    }

    [Fact]
    public void Folder_with_a_mix_of_gzipped_and_plain_idx_files_is_read()
    {
        _dir.Write(DataSource.TrainImages + ".gz", Idx.Gzip(Idx.Images(5, 2, 2)));
        _dir.Write(DataSource.TrainLabels, Idx.Labels(5));
        _dir.Write(DataSource.TestImages, Idx.Images(3, 2, 2));
        _dir.Write(DataSource.TestLabels + ".gz", Idx.Gzip(Idx.Labels(3)));

        var split = DataSource.Load(_dir.Path);

        Assert.Equal(5, split.Train.Count);
        Assert.Equal(3, split.Test.Count);
    }

    [Fact]
    public void Folder_with_only_the_t10k_pair_is_split_80_20_in_file_order()
    {
        _dir.Write(DataSource.TestImages + ".gz", Idx.Gzip(Idx.Images(10, 1, 1, i => (byte)i)));
        _dir.Write(DataSource.TestLabels + ".gz", Idx.Gzip(Idx.Labels(10)));

        var split = DataSource.Load(_dir.Path);

        Assert.Equal([0f, 1, 2, 3, 4, 5, 6, 7], split.Train.Features);
        Assert.Equal([8f, 9], split.Test.Features);
    }

    [Fact]
    public void Folder_missing_idx_files_is_rejected_listing_what_is_missing()
    {
        _dir.Write(DataSource.TrainImages, Idx.Images(2, 1, 1));
        _dir.Write(DataSource.TestLabels + ".gz", Idx.Gzip(Idx.Labels(2)));

        var error = Expect.InputError(() => DataSource.Load(_dir.Path), $"'{_dir.Path}' is missing", "train-labels-idx1-ubyte[.gz]", "t10k-images-idx3-ubyte[.gz]");
        Assert.DoesNotContain("train-images", error.Message);
    }

    [Fact]
    public void Folder_with_half_the_t10k_pair_is_rejected_naming_the_missing_file()
    {
        _dir.Write(DataSource.TestImages, Idx.Images(2, 1, 1));

        Expect.InputError(() => DataSource.Load(_dir.Path), $"'{_dir.Path}' is missing t10k-labels-idx1-ubyte[.gz]");
    }

    [Fact]
    public void Folder_without_any_idx_file_is_rejected_listing_the_expected_names()
    {
        _dir.WriteText("notes.txt", "hello");

        Expect.InputError(
            () => DataSource.Load(_dir.Path),
            $"'{_dir.Path}' holds none of the IDX files",
            DataSource.TrainImages, DataSource.TrainLabels, DataSource.TestImages, DataSource.TestLabels);
    }

    [Fact]
    public void Test_images_of_another_size_than_training_images_are_rejected()
    {
        _dir.Write(DataSource.TrainImages, Idx.Images(4, 2, 2));
        _dir.Write(DataSource.TrainLabels, Idx.Labels(4));
        _dir.Write(DataSource.TestImages, Idx.Images(2, 3, 3));
        _dir.Write(DataSource.TestLabels, Idx.Labels(2));

        Expect.InputError(() => DataSource.Load(_dir.Path), "has 9 pixels per image", "has 4");
    }

    [Fact]
    public void Test_labels_outside_the_training_classes_are_rejected()
    {
        _dir.Write(DataSource.TrainImages, Idx.Images(4, 2, 2));
        _dir.Write(DataSource.TrainLabels, Idx.Labels([0, 1, 2, 1]));
        _dir.Write(DataSource.TestImages, Idx.Images(2, 2, 2));
        _dir.Write(DataSource.TestLabels, Idx.Labels([3, 0]));

        Expect.InputError(() => DataSource.Load(_dir.Path), DataSource.TestLabels, "label 3 at index 0", "0..2");
    }

    [Fact]
    public void Csv_file_is_split_first_80_percent_train_last_20_percent_test_in_file_order()
    {
        var rows = string.Concat(Enumerable.Range(0, 10).Select(i => $"{i},{i % 3}\n"));
        var csv = _dir.WriteText("data.csv", "x,label\n" + rows);

        var split = DataSource.Load(csv);

        Assert.Equal([0f, 1, 2, 3, 4, 5, 6, 7], split.Train.Features);
        Assert.Equal([8f, 9], split.Test.Features);
        Assert.Equal([2, 0], split.Test.Labels);
    }

    [Fact]
    public void Csv_test_split_shares_the_class_count_even_when_a_class_only_appears_in_training()
    {
        var csv = _dir.WriteText("data.csv", "x,label\n1,0\n2,1\n3,2\n4,2\n5,0\n");

        var split = DataSource.Load(csv);

        Assert.Equal(3, split.Train.ClassCount);
        Assert.Equal(3, split.Test.ClassCount);
        Assert.Equal(split.Train.FeatureCount, split.Test.FeatureCount);
    }

    [Fact]
    public void Csv_with_one_row_is_rejected_as_too_small_to_split()
    {
        var csv = _dir.WriteText("data.csv", "x,label\n1,1\n");

        Expect.InputError(() => DataSource.Load(csv), $"'{csv}' has 1 data row(s); at least 2 are needed");
    }

    [Fact]
    public void Missing_path_is_rejected_naming_the_path()
    {
        var path = Path.Combine(_dir.Path, "no-such-data");

        Expect.InputError(() => DataSource.Load(path), $"data: '{path}' does not exist");
    }

    [Fact]
    public void File_that_is_neither_a_folder_nor_a_csv_is_rejected_naming_the_path()
    {
        var path = _dir.Write("train-images-idx3-ubyte", Idx.Images(2, 1, 1));

        Expect.InputError(() => DataSource.Load(path), $"data: '{path}' is neither a folder of IDX files nor a .csv file");
    }
}
