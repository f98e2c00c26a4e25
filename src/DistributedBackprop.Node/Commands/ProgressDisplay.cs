using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Node.Commands;

/// <summary>
/// A progress bar redrawn in place on a terminal; plain lines (one per epoch) when output is redirected.
/// Warnings always go to standard error, one line each.
/// </summary>
public sealed class ProgressDisplay(int epochs, TextWriter output, TextWriter errors, bool interactive) : ITrainingObserver
{
    private const int BarWidth = 24;
    private long _lastDraw;
    private int _lastLength;

    public static ProgressDisplay ForConsole(int epochs) =>
        new(epochs, Console.Out, Console.Error, !Console.IsOutputRedirected);

    public void OnStep(StepReport report, int epoch, int stepInEpoch, int stepsPerEpoch, double samplesPerSecond)
    {
        if (!interactive)
        {
            return;
        }
        var now = Environment.TickCount64;
        if (now - _lastDraw < 100 && stepInEpoch != stepsPerEpoch - 1)
        {
            return;
        }
        _lastDraw = now;
        var done = (stepInEpoch + 1) * BarWidth / stepsPerEpoch;
        var line = $"epoch {epoch + 1}/{epochs} [{new string('#', done)}{new string('.', BarWidth - done)}] "
                   + $"step {stepInEpoch + 1}/{stepsPerEpoch}  loss {report.Loss:F4}  acc {report.Accuracy:P1}  "
                   + $"{samplesPerSecond / 1000:F1}k samples/s";
        output.Write('\r' + line.PadRight(_lastLength));
        _lastLength = line.Length;
    }

    public void OnEpoch(int epoch, double trainLoss, Evaluation test)
    {
        if (interactive)
        {
            output.Write('\r' + new string(' ', _lastLength) + '\r');
            _lastLength = 0;
        }
        output.WriteLine($"epoch {epoch + 1}/{epochs}  train loss {trainLoss:F4}  test loss {test.Loss:F4}  test accuracy {test.Accuracy:P2}");
    }

    /// <summary>One line on standard error, with the flags of the options its fix is about.</summary>
    public void OnWarning(Core.Health.HealthWarning warning)
    {
        if (interactive && _lastLength > 0)
        {
            output.WriteLine();
            _lastLength = 0;
        }
        var flags = string.Join(", ", warning.Options.Select(Cli.TrainingOptionsBinder.FlagOf));
        errors.WriteLine(flags.Length > 0 ? $"warning: {warning.Text} ({flags})" : $"warning: {warning.Text}");
    }
}
