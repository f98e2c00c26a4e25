using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster;

/// <summary>
/// This node's part in a job: the job's <see cref="JobSpec"/>, and the services the node's actors share — the result
/// buffers' pool, the progress observer the host implements, and the job's end. Nothing in it is job state that an
/// actor writes, except the fault log a coordinator of this process keeps across its own restarts (<see cref="Faults"/>):
/// the setup (the data normalised with the coordinator's normaliser) comes by message from the node's weights cache, and
/// the outcome is reported once (<see cref="Ended"/>) for the host to word.
/// </summary>
public sealed class NodeContext(JobSpec spec, ITrainingObserver? progress = null)
{
    private readonly object _gate = new();
    private readonly TaskCompletionSource<JobOutcome> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private BufferPool? _pool;

    public JobSpec Spec { get; } = spec;

    /// <summary>Where the coordinator, when it runs on this node, reports each step, epoch and health warning.</summary>
    public ITrainingObserver? Progress { get; } = progress;

    /// <summary>
    /// The faults a coordinator on this node records. It outlives the actor: a coordinator that restarts here (a range
    /// owner's loss restarts it) goes on with the same log, so the summary lists the faults before the restart too. One
    /// that takes over on another node starts its own.
    /// </summary>
    public Coordinator.FaultLog Faults { get; } = new();

    /// <summary>Sees the workers' sums before they are sent (chaos testing); none in production.</summary>
    public Workers.IComputedSlicesHook? ComputedSlicesHook { get; init; }

    /// <summary>Result buffers shared by the workers and the coordinator of this process (no per-step allocation).</summary>
    public BufferPool Pool
    {
        get
        {
            lock (_gate)
            {
                return _pool ??= BufferPool.ForSlices(Spec.ResultLength, Spec.Options.Slices);
            }
        }
    }

    /// <summary>How the job ended on this node, once it has (the host awaits it).</summary>
    public Task<JobOutcome> Outcome => _outcome.Task;

    public bool HasEnded => _outcome.Task.IsCompleted;

    /// <summary>
    /// A coordinator accepted this node into the job: a coordinator that starts here later took over from another, and
    /// what it meets (a run folder it cannot reach) is a fault, not the input of the person who started the node.
    /// </summary>
    public bool AcceptedByCoordinator
    {
        get => Volatile.Read(ref _acceptedByCoordinator);
        set => Volatile.Write(ref _acceptedByCoordinator, value);
    }

    // Set by the node agent, read by a coordinator that starts on this node: two actors, two threads.
    private bool _acceptedByCoordinator;

    /// <summary>Reports how the job ended; the first report wins (a later one — say, the node stopping after it — is ignored).</summary>
    public void Ended(JobOutcome outcome) => _outcome.TrySetResult(outcome);

    /// <summary>The host stopped waiting (interrupted): the outcome is cancelled.</summary>
    public void Abandon(CancellationToken cancel) => _outcome.TrySetCanceled(cancel);
}
