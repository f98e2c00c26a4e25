using DistributedBackprop.Core.Layers;

namespace DistributedBackprop.Core.Tests.Support;

/// <summary>Runs one real layer over caller-owned arrays: a training or inference forward, then its backward.</summary>
internal sealed class LayerRun
{
    private LayerRun(Layer layer, int rows, float[] input, float[] parameters, float[] buffers, bool training, ulong seed,
        long step, int[] samples, int layerIndex)
    {
        Layer = layer;
        Rows = rows;
        Input = input;
        Parameters = parameters;
        Buffers = buffers;
        Training = training;
        Seed = seed;
        Step = step;
        Samples = samples;
        LayerIndex = layerIndex;
        Output = new float[rows * layer.OutputSize];
        Statistics = new float[layer.StatisticsCount];
        Scratch = new float[layer.ScratchSize(rows)];
        Gradients = new float[layer.ParameterCount];
        InputGradient = new float[rows * layer.InputSize];
    }

    public Layer Layer { get; }
    public int Rows { get; }
    public float[] Input { get; }
    public float[] Parameters { get; }
    public float[] Buffers { get; }
    public bool Training { get; }
    public ulong Seed { get; }
    public long Step { get; }
    public int[] Samples { get; }
    public int LayerIndex { get; }
    public float[] Output { get; }
    public float[] Statistics { get; }
    public float[] Scratch { get; }
    public float[] Gradients { get; }
    public float[] InputGradient { get; }

    public static LayerRun Forward(Layer layer, int rows, float[] input, float[]? parameters = null, float[]? buffers = null,
        bool training = true, ulong seed = 0, long step = 0, int[]? samples = null, int layerIndex = 0)
    {
        var run = new LayerRun(layer, rows, input, parameters ?? new float[layer.ParameterCount],
            buffers ?? new float[layer.BufferCount], training, seed, step, samples ?? Enumerable.Range(0, rows).ToArray(),
            layerIndex);
        var pass = run.Pass();
        layer.Forward(ref pass);
        return run;
    }

    /// <summary>Backward with dE/dy = <paramref name="outputGradient"/>; fills <see cref="Gradients"/> and <see cref="InputGradient"/>.</summary>
    public LayerRun Backward(float[] outputGradient)
    {
        var pass = Pass();
        pass.OutputGradient = outputGradient;
        pass.InputGradient = InputGradient;
        Layer.Backward(ref pass);
        return this;
    }

    private LayerPass Pass() => new()
    {
        Rows = Rows,
        Training = Training,
        Parameters = Parameters,
        Buffers = Buffers,
        Gradients = Gradients,
        Statistics = Statistics,
        Input = Input,
        Output = Output,
        Scratch = Scratch,
        Seed = Seed,
        Step = Step,
        SampleIndices = Samples,
        LayerIndex = LayerIndex,
    };
}
