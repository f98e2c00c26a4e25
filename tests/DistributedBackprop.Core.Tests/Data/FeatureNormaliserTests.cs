using DistributedBackprop.Core.Data;
using Xunit;

namespace DistributedBackprop.Core.Tests.Data;

public sealed class FeatureNormaliserTests
{
    [Fact]
    public void Normalised_training_data_has_zero_mean_and_unit_std_per_non_constant_feature()
    {
        var train = EmbeddedSample.Load().Train;
        var normaliser = FeatureNormaliser.Fit(train);

        var normalised = FeatureStatistics.Compute(normaliser.Apply(train));

        var checkedFeatures = 0;
        for (var j = 0; j < train.FeatureCount; j++)
        {
            if (normaliser.Std[j] == 1f)
            {
                continue;
            }
            checkedFeatures++;
            Assert.InRange(normalised.Mean[j], -1e-4, 1e-4);
            Assert.InRange(Math.Sqrt(normalised.Variance(j)), 1 - 1e-4, 1 + 1e-4);
        }
        Assert.True(checkedFeatures > 700, $"only {checkedFeatures} non-constant pixels");
    }

    [Fact]
    public void Constant_feature_gets_std_one_and_stays_finite()
    {
        var data = new Dataset("c", [5f, 1f, 5f, 2f, 5f, 3f], [0, 1, 0], featureCount: 2, classCount: 2);

        var normaliser = FeatureNormaliser.Fit(data);
        var normalised = normaliser.Apply(data);

        Assert.Equal(5f, normaliser.Mean[0]);
        Assert.Equal(1f, normaliser.Std[0]);
        Assert.All(normalised.Features, v => Assert.True(float.IsFinite(v)));
        Assert.Equal(0f, normalised.Row(1)[0]);
    }

    [Fact]
    public void Std_is_the_population_standard_deviation_of_the_training_rows()
    {
        var data = new Dataset("p", [1f, 3f], [0, 1], featureCount: 1, classCount: 2);

        var normaliser = FeatureNormaliser.Fit(data);

        Assert.Equal(2f, normaliser.Mean[0]);
        Assert.Equal(1f, normaliser.Std[0]);
        Assert.Equal([-1f, 1f], normaliser.Apply(data).Features);
    }

    [Fact]
    public void Apply_to_a_dataset_returns_a_new_dataset_and_leaves_the_input_unchanged()
    {
        var data = new Dataset("d", [1f, 10f, 3f, 20f], [0, 1], featureCount: 2, classCount: 2);
        var before = (float[])data.Features.Clone();

        var normalised = FeatureNormaliser.Fit(data).Apply(data);

        Assert.NotSame(data, normalised);
        Assert.Equal(before, data.Features);
        Assert.Equal(data.Labels, normalised.Labels);
        Assert.Equal(data.ClassCount, normalised.ClassCount);
    }

    [Fact]
    public void Apply_to_a_row_in_place_matches_apply_to_the_dataset()
    {
        var test = EmbeddedSample.Load().Test;
        var normaliser = FeatureNormaliser.Fit(test);
        var whole = normaliser.Apply(test);

        var row = test.Row(17).ToArray();
        normaliser.Apply(row);

        Assert.Equal(whole.Row(17).ToArray(), row);
    }

    [Fact]
    public void Normaliser_rebuilt_from_its_stored_arrays_gives_identical_output()
    {
        var data = new Dataset("d", [1f, 10f, 3f, 25f, 8f, -4f], [0, 1, 0], featureCount: 2, classCount: 2);
        var fitted = FeatureNormaliser.Fit(data);

        var restored = new FeatureNormaliser((float[])fitted.Mean.Clone(), (float[])fitted.Std.Clone());

        Assert.Equal(fitted.Apply(data).Features, restored.Apply(data).Features);
    }

    [Fact]
    public void Stored_arrays_with_zero_std_or_different_lengths_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new FeatureNormaliser([0f, 1f], [1f]));
        Assert.Throws<ArgumentException>(() => new FeatureNormaliser([0f], [0f]));
        Assert.Throws<ArgumentException>(() => new FeatureNormaliser([float.NaN], [1f]));
    }

    [Fact]
    public void Data_with_another_feature_count_than_the_normaliser_is_rejected_naming_the_data()
    {
        var normaliser = new FeatureNormaliser([0f, 0f], [1f, 1f]);
        var data = new Dataset("eval.csv", [1f, 2f, 3f], [0], featureCount: 3, classCount: 2);

        Expect.InputError(() => normaliser.Apply(data), "'eval.csv' has 3 features", "fitted on 2");
    }
}
