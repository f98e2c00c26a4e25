using DistributedBackprop.Core.Losses;
using DistributedBackprop.Core.Tests.Support;
using Xunit;
using static DistributedBackprop.Core.Tests.Support.GradientCheck;

namespace DistributedBackprop.Core.Tests.Losses;

/// <summary>Each loss's dE/dy against central differences of a double reference of E summed over the rows.</summary>
public sealed class LossGradientTests
{
    private const int Rows = 5, Classes = 4;
    private static readonly int[] Labels = [0, 3, 1, 3, 2];

    [Fact]
    public void MeanSquaredError_gradient_matches_finite_differences_of_half_the_squared_error()
    {
        Check(new MeanSquaredError(), y => Reference.MeanSquaredError(y, Labels, Classes));
    }

    [Fact]
    public void SoftmaxCrossEntropy_gradient_matches_finite_differences_of_minus_log_softmax()
    {
        Check(new SoftmaxCrossEntropy(), z => Reference.SoftmaxCrossEntropy(z, Labels, Classes));
    }

    [Fact]
    public void SoftmaxCrossEntropy_is_stable_for_large_logits()
    {
        float[] z = [1000f, 0f, -1000f, 999f];
        var gradient = new float[4];

        var (loss, correct) = new SoftmaxCrossEntropy().Evaluate(z, [3], gradient, 1, 4);

        Assert.Equal(Math.Log(1 + Math.Exp(-1)) + 1, loss, 1e-6);
        Assert.Equal(0, correct);
        Assert.All(gradient, g => Assert.True(float.IsFinite(g)));
        Assert.Equal(0f, gradient.Sum(), 1e-6f);
    }

    [Fact]
    public void Losses_count_rows_whose_largest_output_is_the_label()
    {
        float[] y = [0.1f, 0.7f, 0.2f, /* row 2 */ 0.5f, 0.3f, 0.2f, /* row 3 */ 0f, 0f, 1f];
        int[] labels = [1, 1, 2];

        Assert.Equal(2, new MeanSquaredError().Evaluate(y, labels, Span<float>.Empty, 3, 3).Correct);
        Assert.Equal(2, new SoftmaxCrossEntropy().Evaluate(y, labels, Span<float>.Empty, 3, 3).Correct);
    }

    [Fact]
    public void Unknown_loss_name_is_refused_with_an_input_error()
    {
        var e = Assert.Throws<DistbpInputException>(() => Loss.Create("hinge"));
        Assert.Contains("hinge", e.Message);
    }

    private static void Check(Loss loss, Func<double[], double> reference)
    {
        var y = Random(new Random(11), Rows * Classes, scale: 3);
        var gradient = new float[y.Length];

        var (lossSum, _) = loss.Evaluate(y, Labels, gradient, Rows, Classes);

        var yd = y.Doubles();
        Assert.Equal(reference(yd), lossSum, 1e-5 * Math.Abs(reference(yd)));
        AssertClose(Numerical(reference, yd), gradient, 1e-3, loss.Name);
    }
}
