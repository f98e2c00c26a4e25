using System.Text.Json;
using Xunit;

namespace DistributedBackprop.Node.Tests.EndToEnd;

/// <summary>One small real training run on the embedded data, shared by the tests of a class.</summary>
public sealed class TrainedModel : IDisposable
{
    public static readonly string[] Args =
        ["train", "--layers", "784-16-10", "--epochs", "1", "--batch", "200", "--slices", "4", "--threads", "2"];

    public TrainedModel()
    {
        ModelPath = Folder.File("out/model.distbp");
        SummaryPath = Folder.File("out/summary.json");
        Run = Distbp.RunIn(Folder.Path, [.. Args, "--out", ModelPath, "--summary-json", SummaryPath]);
        Assert.True(Run.ExitCode == 0, Run.ToString());
        Summary = JsonDocument.Parse(File.ReadAllText(SummaryPath));
    }

    public TempFolder Folder { get; } = new();
    public string ModelPath { get; }
    public string SummaryPath { get; }
    public DistbpRun Run { get; }
    public JsonDocument Summary { get; }

    public JsonElement this[string key] => Summary.RootElement.GetProperty(key);

    public void Dispose()
    {
        Summary.Dispose();
        Folder.Dispose();
    }
}
