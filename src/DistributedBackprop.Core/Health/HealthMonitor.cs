using DistributedBackprop.Core.Layers;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Core.Health;

/// <summary>
/// Watches training for the three classic failures and says what fixes them:
/// exploding gradients (a global norm far above the clip threshold, or NaN/Inf: the step is skipped, never applied,
/// and the learning rate halved), vanishing gradients (per-layer gradient norms collapsing towards the input) and dead
/// ReLU units (units that never fire over an epoch).
/// </summary>
public sealed class HealthMonitor
{
    /// <summary>A norm this many times the clip threshold counts as exploding.</summary>
    public const double ExplodeFactor = 10.0;
    /// <summary>Without clipping, a norm above this counts as exploding.</summary>
    public const double ExplodeLimitWithoutClip = 1000.0;
    /// <summary>First dense layer's mean gradient norm below this fraction of the last one's: vanishing.</summary>
    public const double VanishingRatio = 1e-2;
    /// <summary>A ReLU layer with at least this fraction of never-firing units over an epoch: dead units.</summary>
    public const double DeadFraction = 0.5;

    private readonly Network _network;
    private readonly int[] _denseLayers;
    private readonly int[] _reluLayers;
    private readonly double[] _epochLayerNormSums;
    private readonly double[][] _epochActivity;
    private int _epochSteps;

    public HealthMonitor(Network network, float clipNorm)
    {
        _network = network;
        ExplodeLimit = clipNorm > 0 ? ExplodeFactor * clipNorm : ExplodeLimitWithoutClip;
        _denseLayers = Enumerable.Range(0, network.Layers.Count).Where(l => network.Layers[l] is Dense).ToArray();
        _reluLayers = Enumerable.Range(0, network.Layers.Count).Where(l => network.Layers[l] is Relu).ToArray();
        _epochLayerNormSums = new double[_denseLayers.Length];
        _epochActivity = _reluLayers.Select(l => new double[network.Layers[l].OutputSize]).ToArray();
        DeadUnitFractions = new double[_reluLayers.Length];
        StepDeadFractions = new double[_reluLayers.Length];
        MeanLayerGradientNorms = new double[_denseLayers.Length];
    }

    public double ExplodeLimit { get; }
    public int ExplodingSteps { get; private set; }
    public int NonFiniteSteps { get; private set; }
    public int SkippedSteps => ExplodingSteps + NonFiniteSteps;
    public int ClippedSteps { get; private set; }
    public int VanishingWarnings { get; private set; }
    public int DeadUnitWarnings { get; private set; }
    public float LearningRateScale { get; private set; } = 1f;
    public double[] DeadUnitFractions { get; }
    public double[] MeanLayerGradientNorms { get; }
    public List<string> Warnings { get; } = [];

    /// <summary>The fraction of each ReLU layer's units that did not fire on any sample of the last applied step.</summary>
    public double[] StepDeadFractions { get; }

    /// <summary>Whether the network has ReLU layers (dead-unit fractions exist only for them).</summary>
    public bool HasReluLayers => _reluLayers.Length > 0;

    /// <summary>Indices of the dense layers, whose gradient norms are tracked.</summary>
    public IReadOnlyList<int> DenseLayers => _denseLayers;

    /// <summary>Judges a step's averaged gradient before it is applied. False: skip the step (the rate is lowered).</summary>
    public bool Admit(long step, double norm, ReadOnlySpan<double> denseLayerNorms, out HealthWarning? warning)
    {
        const string explodingFix = "a lower learning rate, batch normalisation or clipping.";
        string[] explodingOptions = [nameof(TrainingOptions.LearningRate), nameof(TrainingOptions.BatchNorm), nameof(TrainingOptions.Clip)];
        warning = null;
        if (!double.IsFinite(norm))
        {
            NonFiniteSteps++;
            LearningRateScale *= 0.5f;
            warning = new HealthWarning(HealthWarning.Exploding,
                $"exploding gradients at step {step}: the gradient is NaN/Inf; the step was skipped and the learning "
                + $"rate halved (×{LearningRateScale}).", explodingFix, explodingOptions);
        }
        else if (norm > ExplodeLimit)
        {
            ExplodingSteps++;
            LearningRateScale *= 0.5f;
            warning = new HealthWarning(HealthWarning.Exploding,
                $"exploding gradients at step {step}: norm {norm:G4} is far above the limit {ExplodeLimit:G4}; the step was "
                + $"skipped and the learning rate halved (×{LearningRateScale}).", explodingFix, explodingOptions);
        }
        if (warning is not null)
        {
            Warnings.Add(warning.Text);
            return false;
        }
        for (var k = 0; k < denseLayerNorms.Length; k++)
        {
            _epochLayerNormSums[k] += denseLayerNorms[k];
        }
        _epochSteps++;
        return true;
    }

    public void RecordClipped() => ClippedSteps++;

    /// <summary>Restores the learning-rate scale a checkpoint saved (earlier skips halved it).</summary>
    public void RestoreLearningRateScale(float scale) => LearningRateScale = scale;

    /// <summary>Adds a step's activity statistics (the summed slice statistics vector) to the epoch's tally.</summary>
    public void RecordActivity(ReadOnlySpan<float> statisticsSums)
    {
        for (var r = 0; r < _reluLayers.Length; r++)
        {
            var l = _reluLayers[r];
            var counts = statisticsSums[_network.StatisticsOffsets[l]..];
            var tally = _epochActivity[r];
            var silent = 0;
            for (var j = 0; j < tally.Length; j++)
            {
                tally[j] += counts[j];
                silent += counts[j] == 0 ? 1 : 0;
            }
            StepDeadFractions[r] = silent / (double)tally.Length;
        }
    }

    /// <summary>Closes an epoch: computes dead-unit fractions and mean layer norms, and returns new warnings.</summary>
    public List<HealthWarning> EndEpoch(int epoch)
    {
        var warnings = new List<HealthWarning>();
        for (var r = 0; r < _reluLayers.Length; r++)
        {
            var tally = _epochActivity[r];
            // Only applied steps record activity: an epoch whose every step was skipped is no evidence of dead units.
            DeadUnitFractions[r] = _epochSteps > 0 ? tally.Count(c => c == 0) / (double)tally.Length : 0;
            if (DeadUnitFractions[r] >= DeadFraction)
            {
                DeadUnitWarnings++;
                warnings.Add(new HealthWarning(HealthWarning.DeadRelu,
                    $"dead ReLU units in epoch {epoch + 1}: {DeadUnitFractions[r]:P0} of hidden layer {r + 1}'s units never fired.",
                    "a lower learning rate, or the leaky-relu activation.",
                    [nameof(TrainingOptions.LearningRate), nameof(TrainingOptions.Activation)]));
            }
            Array.Clear(tally);
        }
        if (_epochSteps > 0)
        {
            for (var k = 0; k < _denseLayers.Length; k++)
            {
                MeanLayerGradientNorms[k] = _epochLayerNormSums[k] / _epochSteps;
            }
            var first = MeanLayerGradientNorms[0];
            var last = MeanLayerGradientNorms[^1];
            if (_denseLayers.Length > 1 && last > 0 && first < VanishingRatio * last)
            {
                VanishingWarnings++;
                warnings.Add(new HealthWarning(HealthWarning.Vanishing,
                    $"vanishing gradients in epoch {epoch + 1}: the first layer's gradient norm {first:G3} is "
                    + $"{last / Math.Max(first, double.Epsilon):G3}× smaller than the last layer's {last:G3}.",
                    "the relu activation, or batch normalisation.",
                    [nameof(TrainingOptions.Activation), nameof(TrainingOptions.BatchNorm)]));
            }
        }
        Array.Clear(_epochLayerNormSums);
        _epochSteps = 0;
        Warnings.AddRange(warnings.Select(w => w.Text));
        return warnings;
    }

    public HealthReport Report() => new(ExplodingSteps, NonFiniteSteps, SkippedSteps, ClippedSteps, LearningRateScale,
        VanishingWarnings, DeadUnitWarnings, DeadUnitFractions.ToArray(), MeanLayerGradientNorms.ToArray(), Warnings.ToArray());
}

/// <summary>One warning of the health monitor: which failure, what was seen, and the fix.</summary>
/// <summary>
/// A health warning: what was seen, the fix in words, and the options the fix is about (their property names, so that a
/// host can name them its own way: the command line adds their flags).
/// </summary>
public sealed record HealthWarning(string Type, string Message, string Fix, IReadOnlyList<string> Options)
{
    public const string Exploding = "exploding";
    public const string Vanishing = "vanishing";
    public const string DeadRelu = "dead-relu";

    /// <summary>The warning as one line, as printed and as listed in the summary.</summary>
    public string Text => $"{Message} Fix: {Fix}";

    public override string ToString() => Text;
}

public sealed record HealthReport(int ExplodingSteps, int NonFiniteSteps, int SkippedSteps, int ClippedSteps,
    float LearningRateScale, int VanishingWarnings, int DeadUnitWarnings, double[] DeadUnitFractions,
    double[] MeanLayerGradientNorms, string[] Warnings);
