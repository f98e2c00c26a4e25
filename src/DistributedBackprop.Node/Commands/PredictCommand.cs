using System.Globalization;
using System.Text;
using DistributedBackprop.Core;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Losses;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Cli;

namespace DistributedBackprop.Node.Commands;

/// <summary>
/// <c>distbp predict --model FILE --input PATH [--labels FILE] [--output PATH]</c>: the model's prediction for every row,
/// as CSV. Standard output carries only the CSV when there is no --output, so it pipes; the accuracy of labelled input
/// goes to standard error.
/// </summary>
public static class PredictCommand
{
    public const string Help = """
        usage: distbp predict --model FILE --input PATH [--labels FILE] [--output PATH] [--threads N]
        Predicts every row of PATH: a .csv file (a header row; a 'label' column is optional) or an IDX image file
        (.gz or not; --labels names its IDX label file, optional). Writes CSV with a header row to --output (default:
        standard output): 'class', then 'probability_0'... (cross-entropy models) or 'output_0'... (mse models).
        With labels, the accuracy goes to standard error.
        """;

    public static int Run(IReadOnlyList<string> argv)
    {
        var args = ParsedArguments.Parse("predict", argv,
            new HashSet<string> { "model", "input", "labels", "output", "threads" }, new HashSet<string> { "help" });
        if (args.Flag("help"))
        {
            Console.WriteLine(Help);
            return 0;
        }
        var modelPath = args.String("model") ?? throw new DistbpInputException("predict: --model FILE is required.");
        var inputPath = args.String("input") ?? throw new DistbpInputException("predict: --input PATH is required (an IDX image file or a .csv file).");
        var outputPath = args.String("output");
        var threads = args.Int("threads", Environment.ProcessorCount);
        if (threads <= 0)
        {
            throw new DistbpInputException($"--threads: {threads} must be a positive number.");
        }
        AtomicFile.CheckWritable(outputPath, "output");

        var snapshot = ModelFile.Read(modelPath, "--model");
        var network = new Network(snapshot.Header.Spec);
        var input = PredictionInput.Load(inputPath, args.String("labels"), network.InputSize, network.OutputSize);
        var rows = snapshot.Normaliser.Apply(input.Rows);
        var outputs = Evaluator.Outputs(network, snapshot.Weights, rows, threads);
        var (csv, correct) = Format(network, outputs, rows);

        if (outputPath is null)
        {
            Console.Out.Write(csv);
            Console.Out.Flush();
        }
        else
        {
            AtomicFile.Write(outputPath, "output", Encoding.UTF8.GetBytes(csv));
            Console.WriteLine($"wrote {rows.Count:N0} predictions to {outputPath}");
        }
        if (input.Labelled)
        {
            Console.Error.WriteLine($"accuracy {(double)correct / rows.Count:P2} ({correct:N0} of {rows.Count:N0} labelled rows)");
        }
        return 0;
    }

    /// <summary>The CSV text, and how many rows' predicted class equals their label.</summary>
    public static (string Csv, int Correct) Format(Network network, float[] outputs, Dataset rows)
    {
        var classes = network.OutputSize;
        var probabilities = network.Loss is SoftmaxCrossEntropy;
        var column = probabilities ? "probability_" : "output_";
        var text = new StringBuilder();
        text.Append("class");
        for (var c = 0; c < classes; c++)
        {
            text.Append(',').Append(column).Append(c.ToString(CultureInfo.InvariantCulture));
        }
        text.Append('\n');

        var values = new float[classes];
        var correct = 0;
        for (var i = 0; i < rows.Count; i++)
        {
            var output = outputs.AsSpan(i * classes, classes);
            var predicted = Loss.ArgMax(output);
            correct += predicted == rows.Labels[i] ? 1 : 0;
            if (probabilities)
            {
                SoftmaxCrossEntropy.Probabilities(output, values);
            }
            else
            {
                output.CopyTo(values);
            }
            text.Append(predicted.ToString(CultureInfo.InvariantCulture));
            foreach (var value in values)
            {
                // "R": the shortest text that reads back to the same float bits.
                text.Append(',').Append(value.ToString("R", CultureInfo.InvariantCulture));
            }
            text.Append('\n');
        }
        return (text.ToString(), correct);
    }
}
