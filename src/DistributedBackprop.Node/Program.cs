using System.Runtime.InteropServices;
using DistributedBackprop.Core;
using DistributedBackprop.Node.Commands;

namespace DistributedBackprop.Node;

/// <summary>
/// distbp: exit 0 when done, 2 for bad input (one line on stderr naming the input), 1 for an internal failure.
/// </summary>
public static class Program
{
    public const string Usage = """
        usage: distbp <command> [options]

        commands:
          train     train in one process (the main job)
          simulate  run a cluster of N local node processes on loopback: distbp simulate --nodes N [training options]
          node      run one cluster node (docker-compose, Kubernetes, simulate)
          eval      evaluate a saved model: distbp eval --model FILE [--data PATH]
          export    write a saved model as ONNX: distbp export --model FILE --onnx OUT.onnx
          predict   predict every row of a file: distbp predict --model FILE --input PATH [--output PATH]
          probe     GET a node's health or metrics endpoint: distbp probe [URL] (exit 0 when 2xx)
          report    draw a run folder's charts into an HTML page and PNG plots: distbp report RUN_DIR [--out DIR]

        distbp <command> --help lists a command's options; distbp --version prints the version and commit.
        """;

    /// <summary>The version set once in Directory.Build.props, with the commit it was built from (0.5.0+&lt;sha&gt;).</summary>
    public static string Version { get; } =
        typeof(Program).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "unknown";

    public static int Main(string[] args)
    {
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        // SIGTERM (docker stop, kubectl delete, simulate stopping its nodes) takes the same path as Ctrl-C: the node
        // leaves the cluster through CoordinatedShutdown and the process exits, instead of dying or hanging.
        var terminated = false;
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            terminated = true;
            cancel.Cancel();
        });
        try
        {
            if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
            {
                Console.WriteLine(Usage);
                if (args.Length == 0)
                {
                    throw new DistbpInputException("no command given; use train, simulate, node, eval, report, export or predict (distbp --help).");
                }
                return 0;
            }
            if (args[0] is "--version" or "version")
            {
                Console.WriteLine($"distbp {Version}");
                return 0;
            }
            var rest = args.Skip(1).ToArray();
            return args[0] switch
            {
                "train" => TrainCommand.Run(rest, cancel.Token),
                "eval" => EvalCommand.Run(rest),
                "export" => ExportCommand.Run(rest),
                "predict" => PredictCommand.Run(rest),
                "node" => NodeCommand.Run(rest, cancel.Token),
                "simulate" => SimulateCommand.Run(rest, cancel.Token),
                "probe" => ProbeCommand.Run(rest),
                "report" => ReportCommand.Run(rest),
                _ => throw new DistbpInputException($"unknown command '{args[0]}'; use train, simulate, node, eval, report, export or predict (distbp --help)."),
            };
        }
        catch (DistbpInputException e)
        {
            // One line whatever the message holds (a value with a line break in it, say).
            Console.Error.WriteLine($"distbp: {Cli.TrainingOptionsBinder.Describe(e).ReplaceLineEndings(" ")}");
            return 2;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine(terminated ? "distbp: terminated." : "distbp: interrupted.");
            return terminated ? 143 : 130;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"distbp: internal error: {e}");
            return 1;
        }
    }
}
