namespace DistributedBackprop.Core.Training;

/// <summary>Everything that defines a training run. The command line binds these; defaults are the main job's.</summary>
public sealed record TrainingOptions
{
    /// <summary>A folder of IDX files, a CSV file, or null for the embedded Fashion-MNIST sample.</summary>
    public string? DataPath { get; init; }
    public string Layers { get; init; } = "784-256-128-10";
    public string Activation { get; init; } = "relu";
    public string Loss { get; init; } = "cross-entropy";
    public string Optimizer { get; init; } = "momentum";
    public float LearningRate { get; init; } = 0.1f;
    public float Momentum { get; init; } = 0.9f;
    public int Batch { get; init; } = 256;
    public int Slices { get; init; } = 8;
    public int Epochs { get; init; } = 10;
    /// <summary>Global-norm clipping threshold; 0 turns clipping off.</summary>
    public float Clip { get; init; } = 5f;
    public float Dropout { get; init; }
    public bool BatchNorm { get; init; }
    public ulong Seed { get; init; } = 1;
    public int WarmupSteps { get; init; }
    public string Decay { get; init; } = "none";
    public int DecayEvery { get; init; }
    public float DecayFactor { get; init; } = 0.1f;
    public int Workers { get; init; } = 1;
    /// <summary>Compute threads of one worker; slices run in parallel on them. Never changes the result.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>
    /// Where a step's gradients are summed and the optimizer runs: <c>coordinator</c> (on the coordinator's node) or
    /// <c>sharded</c> (range owners, one per node). Never changes the result.
    /// </summary>
    public string Aggregation { get; init; } = "coordinator";

    /// <summary>The values of <see cref="Aggregation"/>.</summary>
    public static readonly string[] Aggregations = ["coordinator", "sharded"];

    public string? CheckpointDir { get; init; }
    public int CheckpointEvery { get; init; }

    /// <summary>Checks what can be checked without the data; throws <see cref="DistbpInputException"/>.</summary>
    public void Validate()
    {
        Require(LearningRate > 0 && float.IsFinite(LearningRate), nameof(LearningRate), $"{LearningRate} must be a positive number, e.g. 0.1.");
        Require(Momentum >= 0 && Momentum < 1, nameof(Momentum), $"{Momentum} must be in [0, 1), e.g. 0.9.");
        Require(Batch > 0, nameof(Batch), $"{Batch} must be a positive number of samples, e.g. 256.");
        Require(Slices > 0, nameof(Slices), $"{Slices} must be a positive number, e.g. 8.");
        Require(Batch % Slices == 0, nameof(Slices), $"{Slices} slices do not divide the global batch of {Batch}; choose a divisor of the batch.");
        Require(Epochs > 0, nameof(Epochs), $"{Epochs} must be a positive number, e.g. 10.");
        Require(Clip >= 0 && float.IsFinite(Clip), nameof(Clip), $"{Clip} must be 0 (off) or a positive norm, e.g. 5.");
        Require(Dropout >= 0 && Dropout < 1, nameof(Dropout), $"{Dropout} is outside [0, 1); 0 drops nothing, values towards 1 drop more.");
        Require(WarmupSteps >= 0, nameof(WarmupSteps), $"{WarmupSteps} must be 0 or a positive number of steps.");
        Require(Optim.LearningRateSchedule.Decays.Contains(Decay), nameof(Decay), $"unknown schedule '{Decay}'; use none, step or cosine.");
        Require(Decay != "step" || DecayEvery > 0, nameof(DecayEvery), "step decay needs a positive number of steps, e.g. 1000.");
        Require(DecayFactor > 0 && DecayFactor <= 1, nameof(DecayFactor), $"{DecayFactor} must be in (0, 1], e.g. 0.1.");
        Require(Workers > 0, nameof(Workers), $"{Workers} must be a positive number.");
        Require(Threads > 0, nameof(Threads), $"{Threads} must be a positive number.");
        Require(Aggregations.Contains(Aggregation), nameof(Aggregation), $"unknown aggregation '{Aggregation}'; use coordinator or sharded.");
        Require(CheckpointEvery >= 0, nameof(CheckpointEvery), $"{CheckpointEvery} must be 0 (at epoch ends) or a positive number of steps.");
        Require(Model.NetworkSpec.Activations.Contains(Activation), nameof(Activation), $"unknown activation '{Activation}'; use relu, leaky-relu, tanh or sigmoid.");
        Require(Loss is "cross-entropy" or "mse", nameof(Loss), $"unknown loss '{Loss}'; use cross-entropy or mse.");
        Require(Optimizer is "sgd" or "momentum" or "adam", nameof(Optimizer), $"unknown optimizer '{Optimizer}'; use sgd, momentum or adam.");
        Model.NetworkSpec.ParseWidths(Layers);
    }

    /// <summary>
    /// A short hash of every option that changes the trained weights (not threads, workers or where checkpoints go):
    /// checkpoints, resumes and cluster nodes refuse a different one.
    /// </summary>
    public string ConfigHash()
    {
        var canonical = string.Join('|', Layers, Activation, Loss, Optimizer,
            Format(LearningRate), Format(Momentum), Batch, Slices, Epochs, Format(Clip), Format(Dropout), BatchNorm, Seed,
            WarmupSteps, Decay, DecayEvery, Format(DecayFactor));
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(canonical));
        return Convert.ToHexStringLower(hash)[..12];
    }

    private static string Format(float value) => value.ToString("R", System.Globalization.CultureInfo.InvariantCulture);

    private static void Require(bool condition, string option, string problem)
    {
        if (!condition)
        {
            throw new DistbpInputException(option, problem);
        }
    }
}
