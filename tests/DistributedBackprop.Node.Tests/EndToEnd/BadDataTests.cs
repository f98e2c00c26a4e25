using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>Broken data files: each is refused with exit code 2 and one line naming the file.</summary>
public sealed class BadDataTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    private static readonly string[] Small = ["--layers", SmallData.Layers, "--batch", "8", "--slices", "2", "--epochs", "1"];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_small_idx_folder_trains_so_each_broken_copy_fails_for_its_defect_alone(bool gzip)
    {
        var folder = SmallData.IdxFolder(_temp, gzip: gzip);
        var model = _temp.File("out/model.distbp");
        var run = Distbp.RunIn(_temp.Path, ["train", "--data", folder, .. Small, "--out", model]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.True(File.Exists(model));
    }

    [Fact]
    public void The_small_csv_trains_so_each_broken_copy_fails_for_its_defect_alone()
    {
        var csv = _temp.WriteText("data.csv", SmallData.CsvText());
        var run = Distbp.RunIn(_temp.Path, ["train", "--data", csv, .. Small]);
        Assert.True(run.ExitCode == 0, run.ToString());
    }

    [Fact]
    public void Data_path_that_does_not_exist_is_refused()
    {
        var missing = _temp.File("no-such-folder");
        BadInput.Train(_temp, missing, ["--data", missing, .. Small]);
    }

    [Fact]
    public void Idx_folder_missing_a_file_is_refused()
    {
        var folder = SmallData.IdxFolder(_temp);
        File.Delete(Path.Combine(folder, "t10k-labels-idx1-ubyte"));
        var run = BadInput.Train(_temp, folder, ["--data", folder, .. Small]);
        Assert.Contains("t10k-labels-idx1-ubyte", run.Stderr);
    }

    [Fact]
    public void Truncated_idx_image_file_is_refused()
    {
        var folder = SmallData.IdxFolder(_temp);
        var images = Path.Combine(folder, "train-images-idx3-ubyte");
        var bytes = File.ReadAllBytes(images);
        File.WriteAllBytes(images, bytes[..^10]);
        var run = BadInput.Train(_temp, images, ["--data", folder, .. Small]);
        Assert.Contains("truncated", run.Stderr);
    }

    [Fact]
    public void Truncated_gzip_idx_file_is_refused()
    {
        var folder = SmallData.IdxFolder(_temp, gzip: true);
        var labels = Path.Combine(folder, "train-labels-idx1-ubyte.gz");
        var bytes = File.ReadAllBytes(labels);
        File.WriteAllBytes(labels, bytes[..(bytes.Length / 2)]);
        BadInput.Train(_temp, labels, ["--data", folder, .. Small]);
    }

    [Fact]
    public void Label_file_in_place_of_the_image_file_is_refused()
    {
        var folder = SmallData.IdxFolder(_temp);
        var images = _temp.Write("idx/train-images-idx3-ubyte", SmallData.Labels(SmallData.TrainCount));
        var run = BadInput.Train(_temp, images, ["--data", folder, .. Small]);
        Assert.Contains("magic", run.Stderr);
    }

    [Fact]
    public void Image_and_label_counts_that_differ_are_refused()
    {
        var folder = SmallData.IdxFolder(_temp);
        _temp.Write("idx/train-labels-idx1-ubyte", SmallData.Labels(SmallData.TrainCount - 1));
        var run = BadInput.Train(_temp, Path.Combine(folder, "train-images-idx3-ubyte"), ["--data", folder, .. Small]);
        Assert.Contains(Path.Combine(folder, "train-labels-idx1-ubyte"), run.Stderr);
    }

    [Fact]
    public void Csv_with_a_NaN_feature_is_refused()
    {
        var text = SmallData.CsvText().Replace("\n2,1,-2,", "\n2,NaN,-2,", StringComparison.Ordinal);
        var csv = _temp.WriteText("nan.csv", text);
        var run = BadInput.Train(_temp, csv, ["--data", csv, .. Small]);
        Assert.Contains("line 4", run.Stderr);
    }

    [Fact]
    public void Ragged_csv_is_refused()
    {
        var text = SmallData.CsvText().Replace("\n2,1,-2,", "\n2,-2,", StringComparison.Ordinal);
        var csv = _temp.WriteText("ragged.csv", text);
        var run = BadInput.Train(_temp, csv, ["--data", csv, .. Small]);
        Assert.Contains("line 4", run.Stderr);
    }

    [Fact]
    public void Csv_without_a_label_column_is_refused()
    {
        var csv = _temp.WriteText("nolabel.csv", SmallData.CsvText().Replace("label,", "class,", StringComparison.Ordinal));
        BadInput.Train(_temp, csv, ["--data", csv, .. Small]);
    }

    [Fact]
    public void Data_file_that_is_neither_csv_nor_idx_folder_is_refused()
    {
        var file = _temp.WriteText("data.json", "{}");
        BadInput.Train(_temp, file, ["--data", file, .. Small]);
    }

    [Fact]
    public void Layers_that_do_not_match_a_data_file_are_refused()
    {
        var folder = SmallData.IdxFolder(_temp);
        BadInput.Train(_temp, "--layers", ["--data", folder, "--layers", "784-8-3", "--batch", "8", "--slices", "2", "--epochs", "1"]);
    }

    [Fact]
    public void Batch_larger_than_a_data_file_is_refused()
    {
        var folder = SmallData.IdxFolder(_temp);
        BadInput.Train(_temp, "--batch", ["--data", folder, "--layers", SmallData.Layers, "--batch", "64", "--slices", "2"]);
    }
}
