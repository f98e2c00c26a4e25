using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Layers;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Tests.Support;
using DistributedBackprop.Core.Training;
using Xunit;
using static DistributedBackprop.Core.Tests.Support.GradientCheck;

namespace DistributedBackprop.Core.Tests.Training;

/// <summary>
/// The whole chain rule at once: SliceComputer.Compute's gradient segment (the sum over the slice's rows) against central
/// differences of the slice's summed loss, computed by a double-precision reference of the same network.
/// </summary>
public sealed class NetworkGradientTests
{
    private const ulong Seed = 21;
    private const long Step = 17;
    private static readonly int[] SliceIndices = [7, 2, 9, 0, 4, 5];

    [Theory]
    [InlineData("5-4-3", "relu", "cross-entropy", 0f, false)]
    [InlineData("4-3-3", "relu", "cross-entropy", 0f, true)]
    [InlineData("5-4-3", "sigmoid", "mse", 0f, false)]
    [InlineData("5-4-4-3", "tanh", "cross-entropy", 0f, false)]
    [InlineData("5-4-3", "leaky-relu", "mse", 0.5f, false)]
    [InlineData("4-3-3", "tanh", "cross-entropy", 0.3f, true)]
    public void Slice_gradient_matches_finite_differences_of_the_summed_loss(string layers, string activation, string loss,
        float dropout, bool batchNorm)
    {
        var network = new Network(new NetworkSpec(NetworkSpec.ParseWidths(layers), activation, loss, dropout, batchNorm));
        var random = new Random(layers.Length * 31 + activation.Length);
        var weights = network.Initialize(Seed);
        for (var i = 0; i < weights.Parameters.Length; i++)
        {
            weights.Parameters[i] += (float)((random.NextDouble() * 2 - 1) * 0.3);
        }
        var data = new Dataset("random", Random(random, 10 * network.InputSize, scale: 2),
            Enumerable.Range(0, 10).Select(_ => random.Next(network.OutputSize)).ToArray(), network.InputSize,
            network.OutputSize);
        var result = new float[network.ResultLength];

        SliceComputer.Compute(network, weights, data, SliceIndices, Seed, Step, new Workspace(network, SliceIndices.Length),
            result);

        var x = SliceIndices.SelectMany(i => data.Row(i).ToArray()).Select(v => (double)v).ToArray();
        var labels = SliceIndices.Select(i => data.Labels[i]).ToArray();
        double SummedLoss(double[] p) => ReferenceLoss(network, p, x, labels);
        var parameters = weights.Parameters.Doubles();

        Assert.Equal(SummedLoss(parameters), result[network.LossSumIndex], 1e-5 * Math.Abs(SummedLoss(parameters)) + 1e-6);
        AssertClose(Numerical(SummedLoss, parameters), result.AsSpan(0, network.ParameterCount), 1e-3,
            $"{layers} {activation} {loss} dropout {dropout} batch-norm {batchNorm}");
    }

    private static double ReferenceLoss(Network network, double[] p, double[] x, int[] labels)
    {
        var rows = labels.Length;
        var a = x;
        for (var l = 0; l < network.Layers.Count; l++)
        {
            var lp = p[network.ParameterOffsets[l]..network.ParameterOffsets[l + 1]];
            a = network.Layers[l] switch
            {
                Dense d => Reference.Dense(a, lp, rows, d.InputSize, d.OutputSize),
                Relu => Reference.Relu(a),
                LeakyRelu leaky => Reference.LeakyRelu(a, leaky.Slope),
                Sigmoid => Reference.Sigmoid(a),
                Tanh => Reference.Tanh(a),
                Dropout dropout => Reference.Dropout(a, dropout.Rate, dropout.OutputSize, Seed, Step, SliceIndices, l),
                BatchNorm bn => Reference.BatchNorm(a, lp, rows, bn.OutputSize),
                var other => throw new NotSupportedException(other.Kind),
            };
        }
        return network.Loss.Name == "mse"
            ? Reference.MeanSquaredError(a, labels, network.OutputSize)
            : Reference.SoftmaxCrossEntropy(a, labels, network.OutputSize);
    }
}
