using DistributedBackprop.Core.Layers;

namespace DistributedBackprop.Core.Model;

/// <summary>
/// What a network is: layer widths (input first, classes last), hidden activation, loss, dropout rate and whether hidden
/// layers get batch normalisation. Two nodes with equal specs build identical layer stacks.
/// </summary>
public sealed record NetworkSpec(int[] Widths, string Activation, string Loss, float DropoutRate, bool BatchNorm)
{
    public static readonly string[] Activations = ["relu", "leaky-relu", "tanh", "sigmoid"];

    /// <summary>"784-256-128-10" → widths.</summary>
    public static int[] ParseWidths(string text)
    {
        var parts = text.Split('-');
        var widths = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out widths[i]) || widths[i] <= 0)
            {
                throw new DistbpInputException(
                    $"--layers: '{text}' is not a list of positive layer widths such as 784-256-128-10.");
            }
        }
        if (widths.Length < 2)
        {
            throw new DistbpInputException($"--layers: '{text}' needs at least an input and an output width, e.g. 784-10.");
        }
        return widths;
    }

    public string WidthsText => string.Join('-', Widths);

    public IReadOnlyList<Layer> BuildLayers()
    {
        if (!Activations.Contains(Activation))
        {
            throw new DistbpInputException($"--activation: unknown activation '{Activation}'; use relu, leaky-relu, tanh or sigmoid.");
        }
        if (!(DropoutRate >= 0f && DropoutRate < 1f))
        {
            throw new DistbpInputException($"--dropout: {DropoutRate} is outside [0, 1); 0 drops nothing, values towards 1 drop more.");
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
