using DistributedBackprop.Core.Layers;

namespace DistributedBackprop.Core.Model;

/// <summary>
/// What a network is: layer widths (input first, classes last), hidden activation, loss, dropout rate and whether hidden
/// layers get batch normalisation. Two nodes with equal specs build identical layer stacks.
/// </summary>
public sealed record NetworkSpec(int[] Widths, string Activation, string Loss, float DropoutRate, bool BatchNorm)
{
    public static readonly string[] Activations = ["relu", "leaky-relu", "tanh", "sigmoid"];

    /// <summary>The widest layer allowed, in units.</summary>
    public const int MaxLayerWidth = 1 << 20;

    /// <summary>
    /// The most parameters a network may have (4 GiB of float32). With it every count, offset and result length fits
    /// an <see cref="int"/> and an array, so the layers and kernels can index in 32 bits.
    /// </summary>
    public const long MaxParameterCount = 1L << 30;

    /// <summary>"784-256-128-10" → widths, checked with <see cref="CheckWidths"/>.</summary>
    public static int[] ParseWidths(string text)
    {
        var parts = text.Split('-');
        var widths = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!long.TryParse(parts[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var width)
                || width <= 0)
            {
                throw new DistbpInputException(
                    "Layers", $"'{text}' is not a list of positive layer widths such as 784-256-128-10.");
            }
            if (width > MaxLayerWidth)
            {
                throw WidthOutOfRange(parts[i], text);
            }
            widths[i] = (int)width;
        }
        CheckWidths(widths, text);
        return widths;
    }

    /// <summary>
    /// Refuses widths that no network may have, in 64-bit arithmetic and before anything is sized: fewer than two,
    /// one not positive or over <see cref="MaxLayerWidth"/>, or more than <see cref="MaxParameterCount"/> parameters.
    /// </summary>
    public static void CheckWidths([System.Diagnostics.CodeAnalysis.NotNull] int[]? widths, string text)
    {
        if (widths is null || widths.Length < 2)
        {
            throw new DistbpInputException("Layers", $"'{text}' needs at least an input and an output width, e.g. 784-10.");
        }
        long parameters = 0;
        for (var i = 0; i < widths.Length; i++)
        {
            if (widths[i] <= 0 || widths[i] > MaxLayerWidth)
            {
                throw WidthOutOfRange(widths[i].ToString(System.Globalization.CultureInfo.InvariantCulture), text);
            }
            if (i > 0)
            {
                // Dense weights and biases, plus batch norm's scale and shift (counted for every hidden layer: a bound).
                parameters += (long)widths[i - 1] * widths[i] + 3L * widths[i];
            }
            if (parameters > MaxParameterCount)
            {
                throw new DistbpInputException(
                    "Layers", $"'{text}' has over {MaxParameterCount:N0} parameters (4 GiB of float32), the most a network may have; use narrower layers.");
            }
        }
    }

    private static DistbpInputException WidthOutOfRange(string width, string text) =>
        new("Layers", $"width {width} in '{text}' is outside 1..{MaxLayerWidth:N0} units; use narrower layers.");

    public string WidthsText => string.Join('-', Widths);

    public IReadOnlyList<Layer> BuildLayers()
    {
        CheckWidths(Widths, Widths is null ? "(no widths)" : string.Join('-', Widths));
        if (!Activations.Contains(Activation))
        {
            throw new DistbpInputException("Activation", $"unknown activation '{Activation}'; use relu, leaky-relu, tanh or sigmoid.");
        }
        if (!(DropoutRate >= 0f && DropoutRate < 1f))
        {
            throw new DistbpInputException("Dropout", $"{DropoutRate} is outside [0, 1); 0 drops nothing, values towards 1 drop more.");
        }
        var init = Activation is "relu" or "leaky-relu" ? WeightInit.He : WeightInit.Xavier;
        var layers = new List<Layer>();
        for (var i = 0; i < Widths.Length - 1; i++)
        {
            var isOutput = i == Widths.Length - 2;
            layers.Add(new Dense(Widths[i], Widths[i + 1], isOutput ? WeightInit.Xavier : init));
            if (isOutput)
            {
                break;
            }
            var width = Widths[i + 1];
            if (BatchNorm)
            {
                layers.Add(new BatchNorm(width));
            }
            layers.Add(Activation switch
            {
                "relu" => new Relu(width),
                "leaky-relu" => new LeakyRelu(width),
                "tanh" => new Tanh(width),
                _ => new Sigmoid(width),
            });
            if (DropoutRate > 0f)
            {
                layers.Add(new Dropout(width, DropoutRate));
            }
        }
        return layers;
    }
}
