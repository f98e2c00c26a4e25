using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Tests.Data;
using Xunit;

namespace DistributedBackprop.Core.Tests.Checkpoints;

public sealed class ModelFileTests
{
    [Fact]
    public void Round_trip_keeps_weights_normaliser_optimizer_state_and_header()
    {
        using var directory = new TempDirectory();
        var (setup, state) = CheckpointFixture.Trained();
        var snapshot = CheckpointStore.Snapshot(setup, state, "checkpoint");
        var path = Path.Combine(directory.Path, "run.distbp");

        ModelFile.Write(path, snapshot);
        var read = ModelFile.Read(path);

        AssertSameBits(state.Weights.Parameters, read.Weights.Parameters);
        AssertSameBits(state.Weights.Buffers, read.Weights.Buffers);
        AssertSameBits(state.OptimizerState, read.OptimizerState);
        AssertSameBits(setup.Normaliser.Mean, read.Normaliser.Mean);
        AssertSameBits(setup.Normaliser.Std, read.Normaliser.Std);
        Assert.Equal(state.Weights.Sha256(), read.Weights.Sha256());
        var header = read.Header;
        Assert.Equal("checkpoint", header.Kind);
        Assert.Equal([4, 6, 3], header.Widths);
        Assert.Equal("relu", header.Activation);
        Assert.Equal("cross-entropy", header.Loss);
        Assert.True(header.BatchNorm);
        Assert.Equal(0f, header.DropoutRate);
        Assert.Equal(8, header.Step);
        Assert.Equal(state.AppliedUpdates, header.AppliedUpdates);
        Assert.Equal(state.Health.LearningRateScale, header.LearningRateScale);
        Assert.Equal("adam", header.Optimizer);
        Assert.Equal(setup.Options.ConfigHash(), header.ConfigHash);
        Assert.Equal(state.Weights.Sha256(), header.WeightsSha256);
        Assert.Equal(4, header.FeatureCount);
        Assert.Equal(state.OptimizerState.Length, header.OptimizerStateLength);
    }

    [Fact]
    public void Model_kind_stores_no_optimizer_state()
    {
        using var directory = new TempDirectory();
        var (setup, state) = CheckpointFixture.Trained();
        var path = Path.Combine(directory.Path, "model.distbp");

        ModelFile.Write(path, CheckpointStore.Snapshot(setup, state, "model"));
        var read = ModelFile.Read(path);

        Assert.Equal("model", read.Header.Kind);
        Assert.Empty(read.OptimizerState);
        AssertSameBits(state.Weights.Parameters, read.Weights.Parameters);
    }

    [Fact]
    public void A_flipped_byte_anywhere_is_refused_naming_the_path()
    {
        using var directory = new TempDirectory();
        var bytes = Serialized();
        foreach (var position in new[] { 0, 9, 20, bytes.Length / 2, bytes.Length - 40, bytes.Length - 1 })
        {
            var broken = (byte[])bytes.Clone();
            broken[position] ^= 0x10;
            AssertRefused(directory.Write($"flipped-{position}.distbp", broken));
        }
    }

    [Fact]
    public void A_truncated_file_is_refused_naming_the_path()
    {
        using var directory = new TempDirectory();
        var bytes = Serialized();
        foreach (var length in new[] { 0, 4, 8, 47, bytes.Length / 2, bytes.Length - 32, bytes.Length - 1 })
        {
            AssertRefused(directory.Write($"truncated-{length}.distbp", bytes[..length]));
        }
    }

    [Fact]
    public void A_foreign_file_is_refused_naming_the_path()
    {
        using var directory = new TempDirectory();
        var random = new byte[4096];
        new Random(5).NextBytes(random);

        AssertRefused(directory.Write("random.bin", random));
        AssertRefused(directory.WriteText("notes.txt", "These are not the weights you are looking for.\n"));
        AssertRefused(directory.WriteText("fake.distbp", "DISTBPMF but not really a model file, only text pretending to be one."));
        AssertRefused(Path.Combine(directory.Path, "missing.distbp"));
    }

    [Fact]
    public void Write_is_atomic_and_leaves_no_temp_file_behind()
    {
        using var directory = new TempDirectory();
        var (setup, state) = CheckpointFixture.Trained();
        var path = Path.Combine(directory.Path, "nested", "model.distbp");
        var first = CheckpointStore.Snapshot(setup, state, "model");

        ModelFile.Write(path, first);
        var changed = first with { Weights = first.Weights.Copy() };
        changed.Weights.Parameters[0] += 1f;
        ModelFile.Write(path, changed);

        Assert.Equal(["model.distbp"], Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
        Assert.Equal(changed.Weights.Parameters[0], ModelFile.Read(path).Weights.Parameters[0]);
        Assert.Equal(ModelFile.Serialize(changed), File.ReadAllBytes(path));
    }

    [Fact]
    public void Failed_write_leaves_no_temp_file_behind()
    {
        using var directory = new TempDirectory();
        var (setup, state) = CheckpointFixture.Trained();
        // The target is an existing folder, so the final rename fails after the temp file was written.
        var target = Directory.CreateDirectory(Path.Combine(directory.Path, "occupied.distbp")).FullName;

        Assert.ThrowsAny<Exception>(() => ModelFile.Write(target, CheckpointStore.Snapshot(setup, state, "model")));

        Assert.Empty(Directory.GetFiles(directory.Path));
    }

    private static byte[] Serialized()
    {
        var (setup, state) = CheckpointFixture.Trained();
        return ModelFile.Serialize(CheckpointStore.Snapshot(setup, state, "checkpoint"));
    }

    private static void AssertRefused(string path)
    {
        var e = Assert.Throws<DistbpInputException>(() => ModelFile.Read(path, "--model"));
        Assert.Contains(path, e.Message);
        Assert.StartsWith("--model", e.Message);
    }

    private static void AssertSameBits(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
    }
}
