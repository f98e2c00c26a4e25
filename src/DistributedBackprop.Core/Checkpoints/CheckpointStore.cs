using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Core.Checkpoints;

/// <summary>
/// A folder of checkpoints named by step. Each is written atomically; the newest that reads back valid (checksum,
/// network, configuration hash) is the one to resume from — a corrupt newest one is skipped with a warning.
/// </summary>
public sealed class CheckpointStore(string directory, int keep = 3)
{
    public string Directory { get; } = directory;

    public string PathFor(long step) => Path.Combine(Directory, $"checkpoint-{step:D9}.distbp");

    public string Save(TrainingSetup setup, TrainingState state)
    {
        var path = PathFor(state.Step);
        ModelFile.Write(path, Snapshot(setup, state, "checkpoint"));
        foreach (var old in List().Skip(keep))
        {
            File.Delete(old);
        }
        return path;
    }

    /// <summary>Checkpoint files, newest first.</summary>
    public IEnumerable<string> List() =>
        System.IO.Directory.Exists(Directory)
            ? System.IO.Directory.GetFiles(Directory, "checkpoint-*.distbp").OrderDescending(StringComparer.Ordinal)
            : [];

    /// <summary>The newest checkpoint that verifies and was made with the same configuration, or null.</summary>
    public ModelSnapshot? LoadNewestValid(string configHash, Action<string> warn) =>
        Newest(configHash, warn, snapshot => snapshot);

    /// <summary>
    /// The training state of the newest checkpoint that verifies, was made with <paramref name="setup"/>'s options and
    /// restores into it (network, optimizer state, step), or null. One that fails any of these — a crafted file can
    /// carry a valid checksum — is skipped with a warning, as a corrupt one is.
    /// </summary>
    public TrainingState? RestoreNewestValid(TrainingSetup setup, Action<string> warn) =>
        Newest(setup.Options.ConfigHash(), warn, setup.RestoreState);

    private T? Newest<T>(string configHash, Action<string> warn, Func<ModelSnapshot, T> restore) where T : class
    {
        foreach (var path in List())
        {
            ModelSnapshot snapshot;
            try
            {
                snapshot = ModelFile.Read(path, "checkpoint");
            }
            catch (DistbpInputException e)
            {
                warn($"{e.Message} Skipped; trying an older checkpoint.");
                continue;
            }
            if (snapshot.Header.ConfigHash != configHash)
            {
                warn($"checkpoint '{path}' was made with other training options; skipped.");
                continue;
            }
            try
            {
                return restore(snapshot);
            }
            catch (DistbpInputException e)
            {
                warn($"checkpoint '{path}' does not restore into this run ({e.Message}). Skipped; trying an older checkpoint.");
            }
        }
        return null;
    }

    public static ModelSnapshot Snapshot(TrainingSetup setup, TrainingState state, string kind) => new(
        new ModelHeader
        {
            Kind = kind,
            Widths = setup.Network.Spec.Widths,
            Activation = setup.Network.Spec.Activation,
            Loss = setup.Network.Spec.Loss,
            DropoutRate = setup.Network.Spec.DropoutRate,
            BatchNorm = setup.Network.Spec.BatchNorm,
            Step = state.Step,
            AppliedUpdates = state.AppliedUpdates,
            LearningRateScale = state.Health.LearningRateScale,
            Optimizer = state.Optimizer.Name,
            ConfigHash = setup.Options.ConfigHash(),
            WeightsSha256 = state.Weights.Sha256(),
            Options = setup.Options,
        },
        setup.Normaliser,
        state.Weights,
        kind == "checkpoint" ? state.OptimizerState : []);
}
