using DistributedBackprop.Core;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;
using DistributedBackprop.Node.Cli;

namespace DistributedBackprop.Node.Commands;

/// <summary><c>distbp eval --model FILE [--data PATH]</c>: a saved model on a data set's held-out split.</summary>
public static class EvalCommand
{
    public static int Run(IReadOnlyList<string> argv)
    {
        var args = ParsedArguments.Parse("eval", argv, new HashSet<string> { "model", "data", "threads" }, new HashSet<string> { "help" });
        if (args.Flag("help"))
        {
            Console.WriteLine("usage: distbp eval --model FILE [--data PATH] [--threads N]\n"
                              + "Evaluates a model (or checkpoint) on the held-out split of PATH (default: the embedded sample).");
            return 0;
        }
        var modelPath = args.String("model") ?? throw new DistbpInputException("eval: --model FILE is required.");
        var threads = args.Int("threads", Environment.ProcessorCount);
        if (threads <= 0)
        {
            throw new DistbpInputException($"--threads: {threads} must be a positive number.");
        }
        var snapshot = ModelFile.Read(modelPath, "--model");
        var data = DataSource.Load(args.String("data"));
        var network = new Network(snapshot.Header.Spec);
        if (data.Test.FeatureCount != network.InputSize || data.Test.ClassCount > network.OutputSize)
        {
            throw new DistbpInputException(
                $"--data: its {data.Test.FeatureCount} features and {data.Test.ClassCount} classes do not fit the model's {network.Spec.WidthsText} layers.");
        }
        var test = snapshot.Normaliser.Apply(data.Test);
        var evaluation = Evaluator.Evaluate(network, snapshot.Weights, test, threads);
        Console.WriteLine($"model {modelPath}: {network.Spec.WidthsText} {network.Spec.Activation}, step {snapshot.Header.Step}");
        Console.WriteLine($"test accuracy {evaluation.Accuracy:P2}  test loss {evaluation.Loss:F4}  on {evaluation.Count:N0} samples");
        Console.WriteLine($"weights_sha256 {snapshot.Weights.Sha256()}");
        return 0;
    }
}
