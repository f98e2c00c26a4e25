using System.Text.Json.Nodes;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Tests.Data;
using Xunit;

namespace DistributedBackprop.Core.Tests.Checkpoints;

/// <summary>
/// Files whose SHA-256 trailer is valid but whose content lies: every one is the input error naming the file, never
/// another exception, never an allocation the header asks for.
/// </summary>
public sealed class CraftedModelFileTests
{
    private static readonly Lazy<byte[]> Good = new(() =>
    {
        var (setup, state) = CheckpointFixture.Trained();
        return ModelFile.Serialize(CheckpointStore.Snapshot(setup, state, "checkpoint"));
    });

    public static readonly TheoryData<string, string> Headers = new()
    {
        // widths whose product wraps a 32-bit int (65537 x 65537 = 2^32 + 2^17 + 1)
        { "wrapping widths", """{"widths":[4,65537,65537,3]}""" },
        { "a 4 TB network", """{"widths":[4,1000000,1000000,3]}""" },
        { "a width past the limit", """{"widths":[4,2000000,3]}""" },
        { "a negative width", """{"widths":[4,-6,3]}""" },
        { "one width", """{"widths":[4]}""" },
        { "null widths", """{"widths":null}""" },
        { "null activation", """{"activation":null}""" },
        { "an unknown activation", """{"activation":"swish"}""" },
        { "a dropout rate of 1", """{"dropout_rate":1}""" },
        { "a negative feature count", """{"feature_count":-4}""" },
        { "a huge feature count", """{"feature_count":2147483647}""" },
        { "a huge optimizer state", """{"optimizer_state_length":2147483647}""" },
        { "a negative step", """{"step":-1}""" },
        { "more updates than steps", """{"applied_updates":1000000}""" },
        { "a NaN learning-rate scale", """{"learning_rate_scale":"NaN"}""" },
        { "widths of the wrong type", """{"widths":"4-6-3"}""" },
    };

    [Theory]
    [MemberData(nameof(Headers))]
    public void A_crafted_header_with_a_valid_checksum_is_the_input_error(string what, string patch)
    {
        var crafted = CraftedModelFile.WithHeader(Good.Value, header =>
        {
            foreach (var (key, value) in JsonNode.Parse(patch)!.AsObject())
            {
                header[key] = value?.DeepClone();
            }
        });
        var e = Assert.Throws<DistbpInputException>(() => ModelFile.Deserialize(crafted, "crafted.distbp", "--model"));
        Assert.StartsWith("--model: 'crafted.distbp'", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        _ = what;
    }

    [Theory]
    [InlineData("")]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("{")]
    [InlineData("{}")]
    [InlineData("\"text\"")]
    public void A_header_that_is_not_a_header_object_is_the_input_error(string json)
    {
        var crafted = CraftedModelFile.WithHeaderText(Good.Value, json);
        var e = Assert.Throws<DistbpInputException>(() => ModelFile.Deserialize(crafted, "crafted.distbp", "--model"));
        Assert.StartsWith("--model: 'crafted.distbp'", e.Message);
    }

    [Fact]
    public void A_normaliser_with_a_zero_or_nan_std_is_the_input_error()
    {
        foreach (var bad in new[] { 0f, float.NaN, -1f, float.PositiveInfinity })
        {
            // The body starts with the mean (4 features) then the std.
            var crafted = CraftedModelFile.WithBody(Good.Value, body =>
            {
                BitConverter.GetBytes(bad).CopyTo(body, 4 * 4);
                return body;
            });
            var e = Assert.Throws<DistbpInputException>(() => ModelFile.Deserialize(crafted, "crafted.distbp", "--model"));
            Assert.Contains("normaliser", e.Message);
        }
    }

    [Fact]
    public void A_crafted_newest_checkpoint_is_skipped_and_the_older_valid_one_resumes()
    {
        using var directory = new TempDirectory();
        var (setup, state) = CheckpointFixture.Trained();
        var store = new CheckpointStore(directory.Path);
        var older = store.Save(setup, state);
        // Newer by its name; same configuration hash, so only its content can tell it apart.
        var newest = store.PathFor(state.Step + 1);
        var crafted = CraftedModelFile.WithHeader(File.ReadAllBytes(older), header =>
        {
            header["step"] = state.Step + 1;
            header["optimizer_state_length"] = 0;
        });
        File.WriteAllBytes(newest, CraftedModelFile.WithBody(crafted, body => body[..^(4 * state.OptimizerState.Length)]));

        var warnings = new List<string>();
        var restored = store.RestoreNewestValid(setup, warnings.Add);

        Assert.NotNull(restored);
        Assert.Equal(state.Step, restored.Step);
        Assert.Equal(state.Weights.Sha256(), restored.Weights.Sha256());
        Assert.Single(warnings, w => w.Contains(newest, StringComparison.Ordinal) && w.Contains("Skipped", StringComparison.Ordinal));
    }
}
