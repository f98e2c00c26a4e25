using System.Globalization;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Losses;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;

namespace DistributedBackprop.Node.Tests.Export;

/// <summary>
/// <c>distbp predict</c> end to end: for every row, the class and probabilities (or raw outputs) it writes are exactly
/// the network's forward pass on that row, from IDX or CSV input, labelled or not.
/// </summary>
[Collection(TrainedModelsCollection.Name)]
public sealed class PredictTests(TrainedModels trained) : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [MemberData(nameof(TrainedModels.Names), MemberType = typeof(TrainedModels))]
    public void Predict_writes_the_forward_pass_of_every_held_out_row_bit_for_bit(string name)
    {
        var model = ModelFile.Read(trained.ModelPath(name));
        var output = _temp.File($"out/{name}.csv");
        var run = Distbp.Run("predict", "--model", trained.ModelPath(name), "--input", trained.TestImagesPath,
            "--labels", trained.TestLabelsPath, "--output", output);
        Assert.True(run.ExitCode == 0, run.ToString());

        var test = trained.Data.Test;
        var classes = model.Header.Widths[^1];
        var (header, predicted, values) = ReadPredictions(output, classes);
        var column = model.Header.Loss == "cross-entropy" ? "probability_" : "output_";
        Assert.Equal(["class", .. Enumerable.Range(0, classes).Select(c => column + c)], header);
        var expected = TrainedModels.DistbpOutputs(model, test);
        Assert.Equal(test.Count, predicted.Length);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), values.Select(BitConverter.SingleToInt32Bits));
        for (var i = 0; i < test.Count; i++)
        {
            Assert.Equal(Loss.ArgMax(expected.AsSpan(i * classes, classes)), predicted[i]);
        }

        // The accuracy on standard error is eval's on the same rows.
        var network = new Network(model.Header.Spec);
        var evaluation = Evaluator.Evaluate(network, model.Weights, model.Normaliser.Apply(test), threads: 1);
        var correct = (int)Math.Round(evaluation.Accuracy * test.Count);
        Assert.Equal(correct, predicted.Where((c, i) => c == test.Labels[i]).Count());
        Assert.Equal($"accuracy {evaluation.Accuracy:P2} ({correct:N0} of {test.Count:N0} labelled rows)", Assert.Single(run.StderrLines));
        Assert.Equal($"wrote {test.Count:N0} predictions to {output}", Assert.Single(run.StdoutLines));
    }

    [Fact]
    public void Without_output_standard_output_is_the_csv_alone_and_unlabelled_input_prints_no_accuracy()
    {
        var model = trained.ModelPath("relu-cross-entropy");
        var file = _temp.File("predictions.csv");
        var toFile = Distbp.Run("predict", "--model", model, "--input", trained.TestImagesPath, "--output", file);
        var toStdout = Distbp.Run("predict", "--model", model, "--input", trained.TestImagesPath);

        Assert.True(toFile.ExitCode == 0, toFile.ToString());
        Assert.True(toStdout.ExitCode == 0, toStdout.ToString());
        Assert.Equal(File.ReadAllText(file), toStdout.Stdout);
        Assert.Equal("", toStdout.Stderr);
        Assert.Equal(trained.Data.Test.Count + 1, toStdout.StdoutLines.Length);
    }

    [Fact]
    public void The_thread_count_never_changes_the_predictions()
    {
        var model = trained.ModelPath("batch-norm");
        var one = Distbp.Run("predict", "--model", model, "--input", trained.TestImagesPath, "--threads", "1");
        var three = Distbp.Run("predict", "--model", model, "--input", trained.TestImagesPath, "--threads", "3");
        Assert.True(one.ExitCode == 0, one.ToString());
        Assert.Equal(one.Stdout, three.Stdout);
    }

    [Fact]
    public void Csv_rows_with_or_without_the_label_column_get_the_forward_pass_of_their_features()
    {
        // A model trained on a CSV (4 features, 3 classes); its rows, labelled and with the label column removed.
        var labelledCsv = _temp.WriteText("data.csv", SmallData.CsvText());
        var options = new TrainingOptions
        {
            DataPath = labelledCsv,
            Layers = SmallData.Layers,
            Batch = 8,
            Slices = 2,
            Epochs = 3,
            Threads = 1,
            LearningRate = 0.05f,
        };
        var setup = TrainingSetup.Create(options);
        var trainer = new LocalTrainer(setup);
        trainer.Run();
        var modelPath = _temp.File("csv-model.distbp");
        ModelFile.Write(modelPath, CheckpointStore.Snapshot(setup, trainer.State, "model"));
        var unlabelledCsv = _temp.WriteText("features.csv",
            string.Join('\n', SmallData.CsvText().Split('\n').Select(line => line.Length == 0 ? line : line[(line.IndexOf(',') + 1)..])));

        var labelled = Distbp.Run("predict", "--model", modelPath, "--input", labelledCsv);
        var unlabelled = Distbp.Run("predict", "--model", modelPath, "--input", unlabelledCsv);

        Assert.True(labelled.ExitCode == 0, labelled.ToString());
        Assert.True(unlabelled.ExitCode == 0, unlabelled.ToString());
        Assert.Equal(labelled.Stdout, unlabelled.Stdout);
        Assert.StartsWith("accuracy ", Assert.Single(labelled.StderrLines));
        Assert.Equal("", unlabelled.Stderr);
        var rows = CsvReader.Read(labelledCsv);
        var expected = TrainedModels.DistbpOutputs(ModelFile.Read(modelPath), rows);
        var (_, predicted, values) = ReadPredictions(_temp.WriteText("labelled.csv", labelled.Stdout), 3);
        Assert.Equal(rows.Count, predicted.Length);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), values.Select(BitConverter.SingleToInt32Bits));
    }

    /// <summary>The header, the class column and the value columns (row-major) of a predictions CSV.</summary>
    private static (string[] Header, int[] Classes, float[] Values) ReadPredictions(string path, int classes)
    {
        var lines = File.ReadAllLines(path);
        var predicted = new int[lines.Length - 1];
        var values = new float[predicted.Length * classes];
        for (var i = 0; i < predicted.Length; i++)
        {
            var cells = lines[i + 1].Split(',');
            Assert.Equal(classes + 1, cells.Length);
            predicted[i] = int.Parse(cells[0], CultureInfo.InvariantCulture);
            for (var c = 0; c < classes; c++)
            {
                values[i * classes + c] = float.Parse(cells[c + 1], CultureInfo.InvariantCulture);
            }
        }
        return (lines[0].Split(','), predicted, values);
    }
}
