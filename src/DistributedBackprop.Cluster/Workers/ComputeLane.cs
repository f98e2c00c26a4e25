using System.Collections.Concurrent;

namespace DistributedBackprop.Cluster.Workers;

/// <summary>
/// One dedicated thread that runs a worker's jobs one after the other. A step's slices run for milliseconds with the
/// compute team blocked on them; on the shared thread pool that made the pool add threads, whose spinning between
/// Akka's short messages preempted the compute threads on a machine with few cores.
/// </summary>
public sealed class ComputeLane : IDisposable
{
    private readonly BlockingCollection<Action> _jobs = new();

    public ComputeLane(string name)
    {
        var thread = new Thread(() =>
        {
            foreach (var job in _jobs.GetConsumingEnumerable())
            {
                job();
            }
        })
        { IsBackground = true, Name = name };
        thread.Start();
    }

    /// <summary>Queues the work; the task completes (on the thread pool) with its result or its exception.</summary>
    public Task<T> Run<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _jobs.Add(() =>
        {
            try
            {
                done.SetResult(work());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        });
        return done.Task;
    }

    public void Dispose() => _jobs.CompleteAdding();
}
