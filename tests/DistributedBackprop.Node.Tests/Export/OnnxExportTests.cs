using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Export;
using DistributedBackprop.Core.Losses;
using DistributedBackprop.Node.Tests.EndToEnd;
using Microsoft.ML.OnnxRuntime;
using Xunit;
using Xunit.Abstractions;

namespace DistributedBackprop.Node.Tests.Export;

/// <summary>
/// <c>distbp export</c> end to end: the ONNX file it writes, loaded by ONNX Runtime with default options as a user
/// would, gives distbp's own outputs on the held-out data (max abs difference ≤ 1e-5, the same class everywhere).
/// </summary>
[Collection(TrainedModelsCollection.Name)]
public sealed class OnnxExportTests(TrainedModels trained, ITestOutputHelper log) : IDisposable
{
    public const double Tolerance = 1e-5;

    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [MemberData(nameof(TrainedModels.Names), MemberType = typeof(TrainedModels))]
    public void Onnx_runtime_gives_distbp_outputs_on_the_held_out_data(string name)
    {
        var model = ModelFile.Read(trained.ModelPath(name));
        var onnx = Export(name);
        var test = trained.Data.Test;
        var classes = model.Header.Widths[^1];
        var outputName = model.Header.Loss == "cross-entropy" ? OnnxExport.ProbabilitiesName : OnnxExport.RawOutputName;

        var (onnxOutputs, onnxClasses) = RunOnnx(onnx, test.Features, test.Count, test.FeatureCount, outputName);
        var expected = TrainedModels.DistbpOutputs(model, test);

        Assert.Equal(expected.Length, onnxOutputs.Length);
        var maxDifference = 0.0;
        for (var k = 0; k < expected.Length; k++)
        {
            maxDifference = Math.Max(maxDifference, Math.Abs((double)expected[k] - onnxOutputs[k]));
        }
        log.WriteLine($"{name}: max abs difference {maxDifference:E2} over {expected.Length:N0} outputs");
        Assert.True(maxDifference <= Tolerance, $"{name}: max abs difference {maxDifference:E3} > {Tolerance:E0}");
        for (var i = 0; i < test.Count; i++)
        {
            var distbpClass = Loss.ArgMax(expected.AsSpan(i * classes, classes));
            Assert.True(distbpClass == onnxClasses[i], $"{name}: row {i}: distbp says class {distbpClass}, ONNX 'class' says {onnxClasses[i]}");
            Assert.True(distbpClass == Loss.ArgMax(onnxOutputs.AsSpan(i * classes, classes)),
                $"{name}: row {i}: the argmax of ONNX '{outputName}' is not distbp's class {distbpClass}");
        }
    }

    [Fact]
    public void The_graph_declares_its_input_outputs_opset_and_the_model_it_came_from()
    {
        var model = ModelFile.Read(trained.ModelPath("relu-cross-entropy"));
        using var session = new InferenceSession(Export("relu-cross-entropy"));

        var input = Assert.Single(session.InputMetadata);
        Assert.Equal(OnnxExport.InputName, input.Key);
        Assert.Equal(typeof(float), input.Value.ElementType);
        Assert.Equal([-1, 784], input.Value.Dimensions);
        Assert.Equal(OnnxExport.InputName, Assert.Single(session.InputNames));
        Assert.Equal([OnnxExport.ProbabilitiesName, OnnxExport.ClassName], session.OutputNames);
        Assert.Equal([-1, 10], session.OutputMetadata[OnnxExport.ProbabilitiesName].Dimensions);
        Assert.Equal(typeof(long), session.OutputMetadata[OnnxExport.ClassName].ElementType);
        Assert.Equal([-1], session.OutputMetadata[OnnxExport.ClassName].Dimensions);
        Assert.Equal("distbp", session.ModelMetadata.ProducerName);
        Assert.Equal(model.Weights.Sha256(), session.ModelMetadata.CustomMetadataMap["distbp.weights_sha256"]);
        Assert.Equal("784-32-10", session.ModelMetadata.CustomMetadataMap["distbp.layers"]);
    }

    [Fact]
    public void An_mse_model_exports_its_raw_output()
    {
        using var session = new InferenceSession(Export("mse"));
        Assert.Equal([OnnxExport.RawOutputName, OnnxExport.ClassName], session.OutputNames);
    }

    [Fact]
    public void Export_reports_the_file_and_leaves_no_temp_file()
    {
        var onnx = _temp.File("out/model.onnx");
        var run = Distbp.Run("export", "--model", trained.ModelPath("batch-norm"), "--onnx", onnx);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains(onnx, run.Stdout);
        Assert.Equal("", run.Stderr);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(onnx)!, "*.tmp"));
    }

    [Fact]
    public void Exporting_twice_gives_the_same_bytes()
    {
        var first = File.ReadAllBytes(Export("dropout"));
        var second = File.ReadAllBytes(Export("dropout"));
        Assert.Equal(first, second);
    }

    /// <summary>Runs the real <c>distbp export</c> into a fresh file and returns its path.</summary>
    private string Export(string name)
    {
        var onnx = _temp.File($"{name}-{Guid.NewGuid():N}.onnx");
        var run = Distbp.Run("export", "--model", trained.ModelPath(name), "--onnx", onnx);
        Assert.True(run.ExitCode == 0, run.ToString());
        return onnx;
    }

    private static (float[] Outputs, long[] Classes) RunOnnx(string onnx, float[] features, int rows, int featureCount,
        string outputName)
    {
        using var session = new InferenceSession(onnx);
        using var input = OrtValue.CreateTensorValueFromMemory(features, [rows, featureCount]);
        using var options = new RunOptions();
        using var results = session.Run(options, [OnnxExport.InputName], [input], [outputName, OnnxExport.ClassName]);
        return (results[0].GetTensorDataAsSpan<float>().ToArray(), results[1].GetTensorDataAsSpan<long>().ToArray());
    }
}
