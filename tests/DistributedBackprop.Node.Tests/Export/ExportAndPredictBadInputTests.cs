using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;

namespace DistributedBackprop.Node.Tests.Export;

/// <summary>export and predict refuse bad input as every command does: exit 2, one line naming the input, nothing written.</summary>
[Collection(TrainedModelsCollection.Name)]
public sealed class ExportAndPredictBadInputTests(TrainedModels trained) : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Model => trained.ModelPath("relu-cross-entropy");

    private string CorruptModel()
    {
        var bytes = File.ReadAllBytes(Model);
        bytes[bytes.Length / 2] ^= 0x40;
        return _temp.Write("corrupt.distbp", bytes);
    }

    private void Export(string names, string onnx, params string[] args)
    {
        BadInput.Command(_temp, names, ["export", .. args]);
        Assert.False(File.Exists(onnx), $"bad input left '{onnx}' behind");
    }

    private void Predict(string names, string output, params string[] args)
    {
        BadInput.Command(_temp, names, ["predict", .. args, "--output", output]);
        Assert.False(File.Exists(output), $"bad input left '{output}' behind");
    }

    [Fact]
    public void Export_without_onnx_is_refused() => BadInput.Command(_temp, "--onnx", "export", "--model", Model);

    [Fact]
    public void Export_without_model_is_refused()
    {
        var onnx = _temp.File("model.onnx");
        Export("--model", onnx, "--onnx", onnx);
    }

    [Fact]
    public void Export_of_a_missing_model_is_refused()
    {
        var onnx = _temp.File("model.onnx");
        var missing = _temp.File("absent.distbp");
        Export(missing, onnx, "--model", missing, "--onnx", onnx);
    }

    [Fact]
    public void Export_of_a_corrupt_model_is_refused()
    {
        var onnx = _temp.File("model.onnx");
        var corrupt = CorruptModel();
        Export(corrupt, onnx, "--model", corrupt, "--onnx", onnx);
    }

    [Fact]
    public void Export_to_a_folder_is_refused()
    {
        var folder = _temp.Folder("models");
        BadInput.Command(_temp, "--onnx", "export", "--model", Model, "--onnx", folder);
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder));
    }

    [Fact]
    public void Export_below_a_file_is_refused()
    {
        var file = _temp.WriteText("notes.txt", "a file, not a folder\n");
        Export("--onnx", Path.Combine(file, "model.onnx"), "--model", Model, "--onnx", Path.Combine(file, "model.onnx"));
    }

    [Fact]
    public void Export_with_an_unknown_flag_is_refused()
    {
        var onnx = _temp.File("model.onnx");
        Export("--opset", onnx, "--model", Model, "--onnx", onnx, "--opset", "17");
    }

    [Fact]
    public void Predict_without_input_is_refused() => Predict("--input", _temp.File("p.csv"), "--model", Model);

    [Fact]
    public void Predict_without_model_is_refused() =>
        Predict("--model", _temp.File("p.csv"), "--input", trained.TestImagesPath);

    [Fact]
    public void Predict_with_a_missing_model_is_refused()
    {
        var missing = _temp.File("absent.distbp");
        Predict(missing, _temp.File("p.csv"), "--model", missing, "--input", trained.TestImagesPath);
    }

    [Fact]
    public void Predict_with_a_corrupt_model_is_refused()
    {
        var corrupt = CorruptModel();
        Predict(corrupt, _temp.File("p.csv"), "--model", corrupt, "--input", trained.TestImagesPath);
    }

    [Fact]
    public void Predict_on_input_that_does_not_exist_is_refused()
    {
        var missing = _temp.File("absent.csv");
        Predict(missing, _temp.File("p.csv"), "--model", Model, "--input", missing);
    }

    [Fact]
    public void Predict_on_a_folder_is_refused()
    {
        var folder = SmallData.IdxFolder(_temp);
        Predict(folder, _temp.File("p.csv"), "--model", Model, "--input", folder);
    }

    [Fact]
    public void Predict_on_images_of_another_size_is_refused()
    {
        var images = _temp.Write("small-images-idx3-ubyte", SmallData.Images(5));
        var run = BadInput.Command(_temp, images, "predict", "--model", Model, "--input", images);
        Assert.Contains("4 features per row but the model takes 784", run.Stderr);
    }

    [Fact]
    public void Predict_on_csv_rows_of_another_width_is_refused()
    {
        var csv = _temp.WriteText("rows.csv", SmallData.CsvText(6));
        var run = BadInput.Command(_temp, csv, "predict", "--model", Model, "--input", csv);
        Assert.Contains("the model takes 784", run.Stderr);
    }

    [Fact]
    public void Predict_on_a_file_that_is_neither_idx_nor_csv_is_refused()
    {
        var notes = _temp.WriteText("notes.txt", "these are not images\n");
        Predict(notes, _temp.File("p.csv"), "--model", Model, "--input", notes);
    }

    [Fact]
    public void Predict_on_a_csv_without_a_header_row_is_refused()
    {
        var csv = _temp.WriteText("headerless.csv", "1,2,3,4\n5,6,7,8\n");
        var run = BadInput.Command(_temp, csv, "predict", "--model", Model, "--input", csv);
        Assert.Contains("header row", run.Stderr);
    }

    [Fact]
    public void Predict_with_a_csv_label_outside_the_model_classes_is_refused()
    {
        var pixels = string.Join(',', Enumerable.Repeat("0", 784));
        var header = "label," + string.Join(',', Enumerable.Range(0, 784).Select(p => $"pixel{p}"));
        var csv = _temp.WriteText("rows.csv", $"{header}\n3,{pixels}\n12,{pixels}\n");
        var run = BadInput.Command(_temp, csv, "predict", "--model", Model, "--input", csv);
        Assert.Contains("label 12 in data row 2, outside the model's classes 0..9", run.Stderr);
    }

    [Fact]
    public void Predict_with_labels_that_do_not_pair_with_the_images_is_refused()
    {
        var labels = _temp.Write("labels-idx1-ubyte", SmallData.Labels(7));
        Predict(labels, _temp.File("p.csv"), "--model", Model, "--input", trained.TestImagesPath, "--labels", labels);
    }

    [Fact]
    public void Predict_with_labels_for_a_csv_is_refused()
    {
        var csv = _temp.WriteText("rows.csv", SmallData.CsvText(6));
        Predict("--labels", _temp.File("p.csv"), "--model", Model, "--input", csv, "--labels", trained.TestLabelsPath);
    }

    [Fact]
    public void Predict_to_a_folder_is_refused()
    {
        var folder = _temp.Folder("predictions");
        BadInput.Command(_temp, "--output", "predict", "--model", Model, "--input", trained.TestImagesPath, "--output", folder);
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder));
    }

    [Fact]
    public void Predict_below_a_file_is_refused()
    {
        var file = _temp.WriteText("notes.txt", "a file, not a folder\n");
        Predict("--output", Path.Combine(file, "p.csv"), "--model", Model, "--input", trained.TestImagesPath);
    }

    [Fact]
    public void Predict_with_zero_threads_is_refused() =>
        Predict("--threads", _temp.File("p.csv"), "--model", Model, "--input", trained.TestImagesPath, "--threads", "0");

    [Fact]
    public void Bad_input_leaves_an_existing_output_as_it_was()
    {
        var output = _temp.WriteText("p.csv", "earlier predictions\n");
        var images = _temp.Write("small-images-idx3-ubyte", SmallData.Images(5));
        BadInput.Command(_temp, images, "predict", "--model", Model, "--input", images, "--output", output);
        Assert.Equal("earlier predictions\n", File.ReadAllText(output));
    }
}
