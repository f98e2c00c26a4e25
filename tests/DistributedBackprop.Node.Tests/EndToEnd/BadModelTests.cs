using DistributedBackprop.Core.Tests.Checkpoints;
using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>eval refuses model files it cannot trust, with exit code 2 and one line naming the file.</summary>
public sealed class BadModelTests(TrainedModel trained) : IClassFixture<TrainedModel>, IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    private byte[] Good => File.ReadAllBytes(trained.ModelPath);

    [Fact]
    public void The_good_model_evaluates_so_each_broken_copy_fails_for_its_defect_alone()
    {
        var copy = _temp.Write("good.distbp", Good);
        Assert.Equal(0, Distbp.Run("eval", "--model", copy).ExitCode);
    }

    [Fact]
    public void Corrupt_model_file_is_refused()
    {
        var bytes = Good;
        bytes[bytes.Length / 2] ^= 0x40;
        var model = _temp.Write("corrupt.distbp", bytes);
        var run = BadInput.Eval(_temp, model, "--model", model);
        Assert.Contains("corrupt", run.Stderr);
    }

    [Fact]
    public void Truncated_model_file_is_refused()
    {
        var model = _temp.Write("truncated.distbp", Good[..^100]);
        BadInput.Eval(_temp, model, "--model", model);
    }

    [Fact]
    public void Foreign_file_as_model_is_refused()
    {
        var model = _temp.WriteText("notes.distbp", "these are not the weights you are looking for\n");
        var run = BadInput.Eval(_temp, model, "--model", model);
        Assert.Contains("not a distbp model", run.Stderr);
    }

    [Fact]
    public void Missing_model_file_is_refused()
    {
        var model = _temp.File("absent.distbp");
        BadInput.Eval(_temp, model, "--model", model);
    }

    [Fact]
    public void Eval_without_model_is_refused() => BadInput.Eval(_temp, "--model");

    [Fact]
    public void Eval_with_an_unknown_flag_is_refused() =>
        BadInput.Eval(_temp, "--out", "--model", trained.ModelPath, "--out", _temp.File("x"));

    [Theory]
    [InlineData("""{"widths":[784,65537,65537,10]}""")] // wraps a 32-bit parameter count
    [InlineData("""{"widths":null}""")]
    [InlineData("""{"feature_count":2147483647}""")]
    public void A_model_with_a_crafted_header_and_a_valid_checksum_is_refused(string patch)
    {
        var model = _temp.Write("crafted.distbp", CraftedModelFile.WithHeader(Good, header =>
        {
            foreach (var (key, value) in System.Text.Json.Nodes.JsonNode.Parse(patch)!.AsObject())
            {
                header[key] = value?.DeepClone();
            }
        }));
        BadInput.Eval(_temp, model, "--model", model);
        var csv = _temp.WriteText("rows.csv", "a,b\n1,2\n");
        BadInput.Command(_temp, model, "predict", "--model", model, "--input", csv);
    }

    [Fact]
    public void Eval_on_data_the_model_does_not_fit_is_refused()
    {
        var folder = SmallData.IdxFolder(_temp);
        BadInput.Eval(_temp, "--data", "--model", trained.ModelPath, "--data", folder);
    }

    [Fact]
    public void Eval_with_zero_threads_is_refused() =>
        BadInput.Eval(_temp, "--threads", "--model", trained.ModelPath, "--threads", "0");
}
