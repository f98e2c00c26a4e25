using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// The weights versions the coordinator hands out: read-only copies in a small ring of
/// <see cref="WeightsRetention.PublishedVersions"/> buffers, more than a cache keeps, so the oldest buffer is no longer
/// read by anyone in this process when it is reused (remote nodes get serialized bytes at send time), and a step
/// allocates nothing.
/// </summary>
public sealed class PublishedWeights(string runId)
{
    private readonly (float[] Parameters, float[] Buffers)?[] _ring =
        new (float[], float[])?[WeightsRetention.PublishedVersions];

    /// <summary>The newest version published; null before the first.</summary>
    public WeightsVersion? Current { get; private set; }

    /// <summary>
    /// Where the parameters of the version of <paramref name="step"/> go: the optimizer writes the new parameters there
    /// as it updates them, and <see cref="Publish"/> is then told not to copy them again.
    /// </summary>
    public float[] ParametersOf(long step, ModelWeights weights) => Slot(step, weights).Parameters;

    /// <summary>Publishes <paramref name="weights"/> as version <paramref name="step"/>: the new current version.</summary>
    public WeightsVersion Publish(long step, ModelWeights weights, bool parametersWritten)
    {
        var (parameters, buffers) = Slot(step, weights);
        if (!parametersWritten)
        {
            weights.Parameters.CopyTo(parameters, 0);
        }
        weights.Buffers.CopyTo(buffers, 0);
        return Current = new WeightsVersion(runId, step, parameters, buffers);
    }

    private (float[] Parameters, float[] Buffers) Slot(long step, ModelWeights weights)
    {
        var slot = (int)(step % WeightsRetention.PublishedVersions);
        _ring[slot] ??= (new float[weights.Parameters.Length], new float[weights.Buffers.Length]);
        return _ring[slot]!.Value;
    }
}
