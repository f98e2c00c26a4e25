using DistributedBackprop.Core.Health;
using DistributedBackprop.Core.Kernels;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Optim;

namespace DistributedBackprop.Core.Training;

/// <summary>What one applied (or skipped) step did.</summary>
public readonly record struct StepReport(long Step, double Loss, double Accuracy, double GradientNorm, bool Clipped,
    bool Skipped, float LearningRate, HealthWarning? Warning);

/// <summary>
/// What the coordinator decided for a step: its report, and for an applied step the clipping factor, learning rate and
/// update count (Adam's t) the optimizer uses on every range of the parameters.
/// </summary>
public readonly record struct StepDecision(StepReport Report, float Scale, float LearningRate, long AppliedUpdates);

/// <summary>
/// The coordinator's side of a step, shared by the single-process trainer and the cluster coordinator: take the
/// canonical sum of all slice results, average it over the global batch, let the health monitor veto it, clip the
/// global norm, apply the optimizer and fold the slice statistics into the running buffers.
/// </summary>
public sealed class TrainingState
{
    private readonly double[] _denseLayerNorms;
    private readonly int[] _parameterisedLayers;
    private readonly double[] _blockSquares;

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
        Blocks = new ParameterBlocks(network);
        _blockSquares = new double[Blocks.Count];
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

    /// <summary>The fixed blocks the norms are summed over (the same in one process and in range owners).</summary>
    public ParameterBlocks Blocks { get; }

    /// <summary>
    /// Consumes the root sum of a step (it is modified in place) and advances to the next step. <paramref name="publish"/>
    /// is empty, or receives the new parameters (the optimizer writes them there in the same pass).
    /// </summary>
    public StepReport Apply(float[] sum, int globalBatch, int sliceCount, Span<float> publish = default)
    {
        var p = Network.ParameterCount;
        // Averaged and squared block by block; the norms come from the blocks (Decide), the clipping factor is applied
        // by the optimizer as it reads the gradient: two passes in all.
        Blocks.DivideAndSquare(sum.AsSpan(0, p), 0, p, globalBatch, _blockSquares);
        var decision = Decide(_blockSquares, sum.AsSpan(p), globalBatch, sliceCount);
        if (decision.Report.Skipped)
        {
            if (!publish.IsEmpty)
            {
                Weights.Parameters.CopyTo(publish);
            }
            return decision.Report;
        }
        Optimizer.Step(Weights.Parameters, sum.AsSpan(0, p), decision.Scale, OptimizerState, decision.LearningRate,
            decision.AppliedUpdates, publish);
        return decision.Report;
    }

    /// <summary>
    /// The coordinator's part of a step once every block's sum of squares of the averaged gradient is known (here, or
    /// from the range owners): the norms, the health monitor's verdict, the clipping factor and the learning rate, the
    /// activity statistics and the running buffers (from <paramref name="tail"/>: the statistics, loss sum and correct
    /// count that follow the parameters in a result). Advances to the next step; the optimizer is left to the caller,
    /// over the whole vector or range by range (<see cref="StepDecision"/>).
    /// </summary>
    public StepDecision Decide(ReadOnlySpan<double> blockSquares, Span<float> tail, int globalBatch, int sliceCount)
    {
        var network = Network;
        var statisticsCount = network.StatisticsCount;
        var loss = tail[statisticsCount] / (double)globalBatch;
        var accuracy = tail[statisticsCount + 1] / (double)globalBatch;
        for (int l = 0, k = 0, n = 0; l < network.Layers.Count; l++)
        {
            var (first, end) = Blocks.LayerBlocks(l);
            var squares = ParameterBlocks.Combine(blockSquares[first..end]);
            if (k < _denseLayerNorms.Length && Health.DenseLayers[k] == l)
            {
                _denseLayerNorms[k++] = Math.Sqrt(squares);
            }
            if (n < _parameterisedLayers.Length && _parameterisedLayers[n] == l)
            {
                LayerGradientNorms[n++] = Math.Sqrt(squares);
            }
        }
        var norm = Math.Sqrt(ParameterBlocks.Combine(blockSquares[..Blocks.Count]));
        var step = Step;
        var learningRate = Schedule.At(step) * Health.LearningRateScale;
        Step++;
        if (!Health.Admit(step, norm, _denseLayerNorms, out var warning))
        {
            return new StepDecision(new StepReport(step, loss, accuracy, norm, Clipped: false, Skipped: true, learningRate,
                warning), 0f, learningRate, AppliedUpdates);
        }

        var scale = GradientClipping.Scale(norm, ClipNorm);
        if (scale < 1f)
        {
            Health.RecordClipped();
        }
        AppliedUpdates++;

        var statistics = tail[..statisticsCount];
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
        return new StepDecision(new StepReport(step, loss, accuracy, norm, scale < 1f, Skipped: false, learningRate, null),
            scale, learningRate, AppliedUpdates);
    }
}
