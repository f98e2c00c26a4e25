namespace DistributedBackprop.Core.Model;

/// <summary>
/// The buffers one thread needs to run a slice of up to <see cref="MaxRows"/> rows through a network: activations at
/// every layer boundary, two gradient buffers that alternate going backwards, and each layer's scratch.
/// Allocated once and reused every step, so a steady-state step allocates nothing.
/// </summary>
public sealed class Workspace
{
    public Workspace(Network network, int maxRows)
    {
        Network = network;
        MaxRows = maxRows;
        Activations = new float[network.Layers.Count + 1][];
        Activations[0] = new float[maxRows * network.InputSize];
        for (var l = 0; l < network.Layers.Count; l++)
        {
            Activations[l + 1] = new float[maxRows * network.Layers[l].OutputSize];
        }
        GradientA = new float[maxRows * network.MaxWidth];
        GradientB = new float[maxRows * network.MaxWidth];
        Scratch = new float[network.Layers.Count][];
        for (var l = 0; l < network.Layers.Count; l++)
        {
            Scratch[l] = new float[network.Layers[l].ScratchSize(maxRows)];
        }
        Labels = new int[maxRows];
        Indices = new int[maxRows];
    }

    public Network Network { get; }
    public int MaxRows { get; }
    public float[][] Activations { get; }
    public float[] GradientA { get; }
    public float[] GradientB { get; }
    public float[][] Scratch { get; }
    public int[] Labels { get; }
    public int[] Indices { get; }

    /// <summary>
    /// Per layer, what <see cref="Layers.Layer.Prepare"/> derived from the current weights, shared by the workspaces of
    /// one worker's threads (a <see cref="Training.SliceRunner"/> fills it once per step); null: each slice derives its own.
    /// </summary>
    public float[]?[]? Prepared { get; set; }
}
