namespace DistributedBackprop.Core.Training;

/// <summary>
/// A fixed team of compute threads for one worker's slices: the caller runs item 0 and dedicated threads run the
/// others. Parallel.For on the shared thread pool (which Akka's dispatchers use too) often ran the items one after the
/// other, leaving a core idle; dedicated threads start at once. Which thread runs which item never changes a result.
/// </summary>
public sealed class ComputeTeam : IDisposable
{
    private readonly Thread[] _helpers;
    private readonly SemaphoreSlim[] _go;
    private readonly CountdownEvent _done = new(1);
    private Action<int>? _work;
    private Exception? _failure;
    private volatile bool _stopping;

    public ComputeTeam(int size)
    {
        Size = Math.Max(1, size);
        _helpers = new Thread[Size - 1];
        _go = new SemaphoreSlim[Size - 1];
        for (var i = 0; i < _helpers.Length; i++)
        {
            var index = i + 1;
            _go[i] = new SemaphoreSlim(0);
            _helpers[i] = new Thread(() => Loop(index)) { IsBackground = true, Name = $"distbp-compute-{index}" };
            _helpers[i].Start();
        }
    }

    public int Size { get; }

    /// <summary>Runs work(0) … work(count - 1) at once, count ≤ Size, and returns when all are done.</summary>
    public void Run(int count, Action<int> work)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, Size);
        if (count <= 1)
        {
            work(0);
            return;
        }
        _work = work;
        _failure = null;
        _done.Reset(count - 1);
        for (var i = 1; i < count; i++)
        {
            _go[i - 1].Release();
        }
        try
        {
            work(0);
        }
        finally
        {
            _done.Wait();
        }
        if (_failure is { } failure)
        {
            throw new AggregateException(failure);
        }
    }

    private void Loop(int index)
    {
        while (true)
        {
            _go[index - 1].Wait();
            if (_stopping)
            {
                return;
            }
            try
            {
                _work!(index);
            }
            catch (Exception e)
            {
                _failure = e;
            }
            finally
            {
                _done.Signal();
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (var go in _go)
        {
            go.Release();
        }
    }
}
