using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Node.Cli;

/// <summary>The training options of the README's command-line contract, bound onto <see cref="TrainingOptions"/>.</summary>
public static class TrainingOptionsBinder
{
    public static readonly HashSet<string> Valued =
    [
        "data", "layers", "activation", "loss", "optimizer", "lr", "momentum", "batch", "slices", "epochs", "clip",
        "dropout", "seed", "warmup", "decay", "decay-every", "decay-factor", "workers", "threads", "aggregation", "checkpoint-dir",
        "checkpoint-every", "out", "summary-json", "resume", "run-dir",
    ];

    public static readonly HashSet<string> Switches = ["batch-norm", "help"];

    /// <summary>The flags whose names are not their option's in kebab case.</summary>
    private static readonly Dictionary<string, string> RenamedFlags = new(StringComparer.Ordinal)
    {
        [nameof(TrainingOptions.DataPath)] = "data",
        [nameof(TrainingOptions.LearningRate)] = "lr",
        [nameof(TrainingOptions.WarmupSteps)] = "warmup",
    };

    /// <summary>The flag that sets an option: <c>LearningRate</c> → <c>--lr</c>, <c>DecayEvery</c> → <c>--decay-every</c>.</summary>
    public static string FlagOf(string option) =>
        "--" + (RenamedFlags.TryGetValue(option, out var flag) ? flag
            : string.Concat(option.Select((c, i) => char.IsUpper(c) ? (i > 0 ? "-" : "") + char.ToLowerInvariant(c) : c.ToString())));

    /// <summary>An input error as the command line words it: an option's error names its flag.</summary>
    public static string Describe(Core.DistbpInputException error) =>
        error.Option is { } option ? $"{FlagOf(option)}: {error.Problem}" : error.Message;

    public static TrainingOptions Bind(ParsedArguments args)
    {
        var d = new TrainingOptions();
        return new TrainingOptions
        {
            DataPath = args.String("data"),
            Layers = args.String("layers") ?? d.Layers,
            Activation = args.String("activation") ?? d.Activation,
            Loss = args.String("loss") ?? d.Loss,
            Optimizer = args.String("optimizer") ?? d.Optimizer,
            LearningRate = args.Float("lr", d.LearningRate),
            Momentum = args.Float("momentum", d.Momentum),
            Batch = args.Int("batch", d.Batch),
            Slices = args.Int("slices", d.Slices),
            Epochs = args.Int("epochs", d.Epochs),
            Clip = args.Float("clip", d.Clip),
            Dropout = args.Float("dropout", d.Dropout),
            BatchNorm = args.Flag("batch-norm"),
            Seed = args.ULong("seed", d.Seed),
            WarmupSteps = args.Int("warmup", d.WarmupSteps),
            Decay = args.String("decay") ?? d.Decay,
            DecayEvery = args.Int("decay-every", d.DecayEvery),
            DecayFactor = args.Float("decay-factor", d.DecayFactor),
            Workers = args.Int("workers", d.Workers),
            Threads = args.Int("threads", d.Threads),
            // Also from the environment (as `node` takes every option): a deployment sets it once for all its nodes.
            Aggregation = args.String("aggregation") ?? Environment.GetEnvironmentVariable("DISTBP_AGGREGATION") ?? d.Aggregation,
            CheckpointDir = args.String("checkpoint-dir"),
            CheckpointEvery = args.Int("checkpoint-every", d.CheckpointEvery),
        };
    }

    /// <summary>Every option as flags, so another process binds exactly these options (and the same config hash).</summary>
    public static List<string> ToArguments(TrainingOptions o)
    {
        static string F(float v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        var args = new List<string>
        {
            "--layers", o.Layers, "--activation", o.Activation, "--loss", o.Loss, "--optimizer", o.Optimizer,
            "--lr", F(o.LearningRate), "--momentum", F(o.Momentum), "--batch", $"{o.Batch}", "--slices", $"{o.Slices}",
            "--epochs", $"{o.Epochs}", "--clip", F(o.Clip), "--dropout", F(o.Dropout), "--seed", $"{o.Seed}",
            "--warmup", $"{o.WarmupSteps}", "--decay", o.Decay, "--decay-every", $"{o.DecayEvery}",
            "--decay-factor", F(o.DecayFactor), "--workers", $"{o.Workers}", "--threads", $"{o.Threads}",
            "--aggregation", o.Aggregation,
            "--checkpoint-every", $"{o.CheckpointEvery}",
        };
        if (o.DataPath is { } data)
        {
            args.AddRange(["--data", Path.GetFullPath(data)]);
        }
        if (o.CheckpointDir is { } dir)
        {
            args.AddRange(["--checkpoint-dir", Path.GetFullPath(dir)]);
        }
        if (o.BatchNorm)
        {
            args.Add("--batch-norm");
        }
        return args;
    }

    public const string Help = """
        Training options:
          --data PATH            folder of IDX files (.gz or not) or a CSV file; default: embedded Fashion-MNIST sample
          --layers W-W-...       layer widths, input first, classes last (default 784-256-128-10)
          --activation NAME      relu | leaky-relu | tanh | sigmoid (default relu)
          --loss NAME            cross-entropy | mse (default cross-entropy)
          --optimizer NAME       sgd | momentum | adam (default momentum)
          --lr X                 learning rate (default 0.1)
          --momentum X           momentum for --optimizer momentum (default 0.9)
          --batch N              global mini-batch (default 256)
          --slices N             slices per batch; must divide the batch (default 8)
          --epochs N             passes over the training data (default 10)
          --clip X               global gradient-norm clip, 0 = off (default 5)
          --dropout X            dropout rate in [0, 1) after each hidden layer (default 0)
          --batch-norm           batch normalisation before each hidden activation
          --seed N               seed for initialisation, shuffling and dropout (default 1)
          --warmup N             linear learning-rate warm-up steps (default 0)
          --decay NAME           none | step | cosine (default none); --decay-every N, --decay-factor X for step
          --workers N            workers (default 1)
          --threads N            compute threads per worker; never changes the result (default: cores)
          --aggregation MODE     coordinator | sharded: where gradients are summed and the optimizer runs; never
                                 changes the result (default coordinator; also DISTBP_AGGREGATION)
          --run-dir DIR          the run folder: config, metrics.jsonl, events.jsonl, checkpoints, summary, model
                                 (default: runs/<UTC time>-<config hash>); a folder holding a run is never reused
          --checkpoint-dir DIR   write checkpoints there (default: RUN_DIR/checkpoints)
          --checkpoint-every K   checkpoint every K steps (default 100; 0: at the end of each epoch)
          --resume DIR           continue a stopped run in its run folder DIR (or a checkpoint folder), appending
          --out FILE             write the trained model
          --summary-json FILE    write the run's summary as JSON
        """;
}
