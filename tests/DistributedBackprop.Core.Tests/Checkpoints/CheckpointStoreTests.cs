using DistributedBackprop.Core.Checkpoints;
using DistributedBackprop.Core.Optim;
using DistributedBackprop.Core.Tests.Data;
using DistributedBackprop.Core.Training;
using Xunit;

namespace DistributedBackprop.Core.Tests.Checkpoints;

public sealed class CheckpointStoreTests
{
    [Fact]
    public void Store_keeps_only_the_newest_three_checkpoints()
    {
        using var directory = new TempDirectory();
        var store = SaveEveryStep(directory.Path);

        Assert.Equal(["checkpoint-000000008.distbp", "checkpoint-000000007.distbp", "checkpoint-000000006.distbp"],
            store.List().Select(Path.GetFileName));
        Assert.Equal(3, Directory.GetFiles(directory.Path).Length);
    }

    [Fact]
    public void Load_newest_valid_returns_the_newest_checkpoint()
    {
        using var directory = new TempDirectory();
        var store = SaveEveryStep(directory.Path);
        var warnings = new List<string>();

        var snapshot = store.LoadNewestValid(CheckpointFixture.Options.ConfigHash(), warnings.Add);

        Assert.NotNull(snapshot);
        Assert.Equal(8, snapshot.Header.Step);
        Assert.Empty(warnings);
    }

    [Fact]
    public void A_corrupt_newest_checkpoint_is_skipped_with_a_warning_and_the_older_valid_one_returned()
    {
        using var directory = new TempDirectory();
        var store = SaveEveryStep(directory.Path);
        var newest = store.PathFor(8);
        var bytes = File.ReadAllBytes(newest);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(newest, bytes);
        var warnings = new List<string>();

        var snapshot = store.LoadNewestValid(CheckpointFixture.Options.ConfigHash(), warnings.Add);

        Assert.NotNull(snapshot);
        Assert.Equal(7, snapshot.Header.Step);
        Assert.Contains(warnings, w => w.Contains(newest, StringComparison.Ordinal));
    }

    [Fact]
    public void A_truncated_newest_checkpoint_is_skipped()
    {
        using var directory = new TempDirectory();
        var store = SaveEveryStep(directory.Path);
        var bytes = File.ReadAllBytes(store.PathFor(8));
        File.WriteAllBytes(store.PathFor(8), bytes[..(bytes.Length / 3)]);
        var warnings = new List<string>();

        Assert.Equal(7, store.LoadNewestValid(CheckpointFixture.Options.ConfigHash(), warnings.Add)?.Header.Step);
        Assert.Single(warnings);
    }

    [Fact]
    public void A_checkpoint_made_with_other_options_is_skipped_with_a_warning()
    {
        using var directory = new TempDirectory();
        var store = SaveEveryStep(directory.Path);
        var other = CheckpointFixture.Setup(CheckpointFixture.Options with { LearningRate = 0.5f });
        var otherState = other.NewState();
        var foreign = CheckpointStore.Snapshot(other, otherState, "checkpoint");
        foreign = foreign with { Header = foreign.Header with { Step = 100 } };
        ModelFile.Write(store.PathFor(100), foreign);
        var warnings = new List<string>();

        var snapshot = store.LoadNewestValid(CheckpointFixture.Options.ConfigHash(), warnings.Add);

        Assert.NotEqual(CheckpointFixture.Options.ConfigHash(), other.Options.ConfigHash());
        Assert.Equal(8, snapshot?.Header.Step);
        Assert.Contains(warnings, w => w.Contains(store.PathFor(100), StringComparison.Ordinal) && w.Contains("other training options", StringComparison.Ordinal));
    }

    [Fact]
    public void Empty_or_missing_directory_has_no_checkpoint()
    {
        using var directory = new TempDirectory();

        Assert.Null(new CheckpointStore(directory.Path).LoadNewestValid("x", _ => { }));
        Assert.Null(new CheckpointStore(Path.Combine(directory.Path, "absent")).LoadNewestValid("x", _ => { }));
    }

    [Fact]
    public void Resuming_from_a_mid_epoch_checkpoint_gives_the_same_final_weights()
    {
        using var directory = new TempDirectory();
        var setup = CheckpointFixture.Setup(CheckpointFixture.Options with { CheckpointEvery = 1 });
        var store = new CheckpointStore(directory.Path);
        var uninterrupted = new LocalTrainer(setup).Run(checkpoint: s =>
        {
            if (s.Step == 3)
            {
                store.Save(setup, s);
            }
        });

        var snapshot = store.LoadNewestValid(setup.Options.ConfigHash(), _ => { })!;
        var resumedSetup = CheckpointFixture.Setup();
        var state = new TrainingState(resumedSetup.Network, snapshot.Weights,
            Optimizer.Create(snapshot.Header.Optimizer!, resumedSetup.Options.Momentum), resumedSetup.Schedule,
            resumedSetup.Options.Clip, snapshot.OptimizerState, snapshot.Header.Step, snapshot.Header.AppliedUpdates,
            snapshot.Header.LearningRateScale);
        var resumed = new LocalTrainer(resumedSetup, state).Run();

        Assert.Equal(3, snapshot.Header.Step);
        Assert.Equal(uninterrupted.WeightsSha256, resumed.WeightsSha256);
    }

    /// <summary>Runs the fixture (8 steps) with a checkpoint after every step.</summary>
    private static CheckpointStore SaveEveryStep(string directory)
    {
        var setup = CheckpointFixture.Setup(CheckpointFixture.Options with { CheckpointEvery = 1 });
        var store = new CheckpointStore(directory);
        new LocalTrainer(setup).Run(checkpoint: s => store.Save(setup, s));
        return store;
    }
}
