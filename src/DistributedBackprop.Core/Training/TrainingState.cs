using DistributedBackprop.Core.Health;
using DistributedBackprop.Core.Kernels;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Optim;

namespace DistributedBackprop.Core.Training;

/// <summary>What one applied (or skipped) step did.</summary>
public readonly record struct StepReport(long Step, double Loss, double Accuracy, double GradientNorm, bool Clipped,
    bool Skipped, float LearningRate, HealthWarning? Warning);

/// <summary>
/// The coordinator's side of a step, shared by the single-process trainer and the cluster coordinator: take the
/// canonical sum of all slice results, average it over the global batch, let the health monitor veto it, clip the
/// global norm, apply the optimizer and fold the slice statistics into the running buffers.
/// </summary>
public sealed class TrainingState
{
    private readonly double[] _denseLayerNorms;
    private readonly int[] _parameterisedLayers;

    public TrainingState(Network network, ModelWeights weights, Optimizer optimizer, LearningRateSchedule schedule,
        float clipNorm, float[]? optimizerState = null, long step = 0, long appliedUpdates = 0, float learningRateScale = 1f)
    {
        Network = network;
        Weights = weights;
        Optimizer = optimizer;
        Schedule = schedule;
        ClipNorm = clipNorm;
        OptimizerState = optimizerState ?? new float[optimizer.StatePerParameter * network.ParameterCount];
        Step = step;
        AppliedUpdates = appliedUpdates;
        Health = new HealthMonitor(network, clipNorm);
        Health.RestoreLearningRateScale(learningRateScale);
        _denseLayerNorms = new double[Health.DenseLayers.Count];
        _parameterisedLayers = Enumerable.Range(0, network.Layers.Count).Where(l => network.Layers[l].ParameterCount > 0).ToArray();
        LayerGradientNorms = new double[_parameterisedLayers.Length];
        LayerNames = _parameterisedLayers
            .Select(l => network.Layers[l].Kind + _parameterisedLayers.Count(o => o < l && network.Layers[o].Kind == network.Layers[l].Kind))
            .ToArray();
    }

    public Network Network { get; }
    public ModelWeights Weights { get; }
    public Optimizer Optimizer { get; }
    public float[] OptimizerState { get; }
    public LearningRateSchedule Schedule { get; }
    public float ClipNorm { get; }
    public HealthMonitor Health { get; }

    /// <summary>The next global step to run.</summary>
    public long Step { get; private set; }

    /// <summary>The last step's averaged gradient norm per layer with parameters, input side first (before clipping).</summary>
    public double[] LayerGradientNorms { get; }

    /// <summary>Names of those layers: their kind and index among layers of that kind (dense0, batch-norm0, dense1 ...).</summary>
    public string[] LayerNames { get; }

    /// <summary>Updates actually applied (skipped steps do not count): Adam's t.</summary>
    public long AppliedUpdates { get; private set; }

    /// <summary>
    /// Consumes the root sum of a step (it is modified in place) and advances to the next step. <paramref name="publish"/>
    /// is empty, or receives the new parameters (the optimizer writes them there in the same pass).
    /// </summary>
    public StepReport Apply(float[] sum, int globalBatch, int sliceCount, Span<float> publish = default)
    {
        var network = Network;
        var p = network.ParameterCount;
        var loss = sum[network.LossSumIndex] / (double)globalBatch;
        var accuracy = sum[network.CorrectIndex] / (double)globalBatch;
        var gradient = sum.AsSpan(0, p);

        // One pass per layer averages the sum and squares the mean: the per-layer norms (health) and the global norm
        // (clipping). The clipping factor is applied by the optimizer as it reads the gradient: two passes in all.
        var total = 0.0;
        for (int l = 0, k = 0, n = 0; l < network.Layers.Count; l++)
        {
            var squares = Elementwise.DivideAndSumOfSquares(
                gradient[network.ParameterOffsets[l]..network.ParameterOffsets[l + 1]], globalBatch);
            total += squares;
            if (k < _denseLayerNorms.Length && Health.DenseLayers[k] == l)
            {
                _denseLayerNorms[k++] = Math.Sqrt(squares);
            }
            if (n < _parameterisedLayers.Length && _parameterisedLayers[n] == l)
            {
                LayerGradientNorms[n++] = Math.Sqrt(squares);
            }
        }
        var norm = Math.Sqrt(total);
        var step = Step;
        var learningRate = Schedule.At(step) * Health.LearningRateScale;
        Step++;
        if (!Health.Admit(step, norm, _denseLayerNorms, out var warning))
        {
            if (!publish.IsEmpty)
            {
                Weights.Parameters.CopyTo(publish);
            }
            return new StepReport(step, loss, accuracy, norm, Clipped: false, Skipped: true, learningRate, warning);
        }

        var scale = GradientClipping.Scale(norm, ClipNorm);
        if (scale < 1f)
        {
            Health.RecordClipped();
        }
        AppliedUpdates++;
        Optimizer.Step(Weights.Parameters, gradient, scale, OptimizerState, learningRate, AppliedUpdates, publish);

        var statistics = sum.AsSpan(p, network.StatisticsCount);
        Health.RecordActivity(statistics);
        if (network.BufferCount > 0)
        {
            Elementwise.DivideInPlace(statistics, sliceCount);
            for (var l = 0; l < network.Layers.Count; l++)
            {
                if (network.Layers[l].BufferCount > 0)
                {
                    network.Layers[l].UpdateBuffers(network.LayerBuffers(Weights.Buffers, l),
                        statistics[network.StatisticsOffsets[l]..network.StatisticsOffsets[l + 1]]);
                }
            }
        }
        return new StepReport(step, loss, accuracy, norm, scale < 1f, Skipped: false, learningRate, null);
    }
}
