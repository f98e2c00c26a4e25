using System.Text;
using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Tests.Checkpoints;
using DistributedBackprop.Core.Tests.Data;
using Xunit;
using Xunit.Abstractions;

namespace DistributedBackprop.Core.Tests.Fuzz;

/// <summary>
/// The file decoders a user or an attacker can feed: model and checkpoint files (mutated, then their SHA-256 trailer
/// recomputed, so only the content lies), IDX images and labels, CSV. Each refuses a bad input with the input error.
/// </summary>
public sealed class FileDecoderFuzzTests(ITestOutputHelper output)
{
    private static bool IsInputError(Exception e) => e is DistbpInputException;

    private void Report(string target, (int Cases, int Accepted) result) =>
        output.WriteLine($"{target}: {result.Cases} cases (seed {Fuzzer.Seed}), {result.Accepted} decoded, the rest refused as the input error; no other exception, none over {Fuzzer.MaxCallTime.TotalSeconds} s, no allocation far above the input");

    [Fact]
    public void Model_and_checkpoint_files_with_valid_trailers()
    {
        var (setup, state) = CheckpointFixture.Trained();
        byte[][] seeds =
        [
            ModelFile.Serialize(CheckpointStore.Snapshot(setup, state, "checkpoint"))[..^32],
            ModelFile.Serialize(CheckpointStore.Snapshot(setup, state, "model"))[..^32],
        ];
        Report("model file", Fuzzer.Run("model file", seeds,
            content => ModelFile.Deserialize(CraftedModelFile.Resealed(content), "fuzz.distbp", "--model"),
            IsInputError, Fuzzer.Cases(3000)));
    }

    [Fact]
    public void Idx_images_and_labels()
    {
        byte[][] images = [Idx.Images(3, 4, 5, p => (byte)(p * 7)), Idx.Images(1, 28, 28)];
        Report("IDX images", Fuzzer.Run("IDX images", images, bytes => IdxReader.ParseImages(bytes, "fuzz-images"),
            IsInputError, Fuzzer.Cases(3000)));
        byte[][] labels = [Idx.Labels(12), Idx.Labels([0, 1, 2, 9])];
        Report("IDX labels", Fuzzer.Run("IDX labels", labels, bytes => IdxReader.ParseLabels(bytes, "fuzz-labels"),
            IsInputError, Fuzzer.Cases(3000)));
    }

    [Fact]
    public void Csv_files()
    {
        byte[][] seeds =
        [
            Encoding.UTF8.GetBytes("label,a,b,c\n0,1,2,3\n1,0.5,-2,1e3\n2,0,0,0\n"),
            Encoding.UTF8.GetBytes("a,label,b\r\n1.5,1,2\r\n3,0,4\r\n"),
        ];
        Report("CSV", Fuzzer.Run("CSV", seeds,
            bytes => CsvReader.Read(new StringReader(Encoding.UTF8.GetString(bytes)), "fuzz.csv", "label", "fuzz"),
            IsInputError, Fuzzer.Cases(3000)));
    }
}
