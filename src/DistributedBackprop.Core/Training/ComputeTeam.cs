namespace DistributedBackprop.Core.Training;

/// <summary>
/// A fixed team of compute threads for one worker's slices: the caller runs item 0 and dedicated threads run the
/// others. Parallel.For on the shared thread pool (which Akka's dispatchers use too) often ran the items one after the
/// other, leaving a core idle; dedicated threads start at once. Which thread runs which item never changes a result.
/// Between runs a helper spins for a short while before it sleeps: the next step's run usually comes within a few
/// tenths of a millisecond, and a sleeping helper started ~0.04 ms (sometimes much more) after the caller, which then
/// waited for it at the end.
/// </summary>
public sealed class ComputeTeam : IDisposable
{
    private readonly Thread[] _helpers;
    private readonly SemaphoreSlim[] _go;
    private readonly int[] _sleeping;
    private int _generation;
    private readonly CountdownEvent _done = new(1);
    private Action<int>? _work;
    private Exception? _failure;
    private volatile bool _stopping;
    private volatile int _active;

    public ComputeTeam(int size)
    {
        Size = Math.Max(1, size);
        _helpers = new Thread[Size - 1];
        _go = new SemaphoreSlim[Size - 1];
        _sleeping = new int[Size - 1];
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
        // The helpers take part when the generation moves past theirs; a sleeping one is also woken. (Full fences on
        // both sides: a helper that is about to sleep either sees the new generation or is released.)
        _active = count;
        Interlocked.Increment(ref _generation);
        for (var i = 1; i < Size; i++)
        {
            if (Volatile.Read(ref _sleeping[i - 1]) != 0)
            {
                _go[i - 1].Release();
            }
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

    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 2000; // 0.5 ms

    private void Loop(int index)
    {
        var seen = 0;
        while (true)
        {
            seen = AwaitGeneration(index, seen);
            if (_stopping)
            {
                return;
            }
            if (index >= _active)
            {
                continue; // this run needs fewer threads
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

    /// <summary>Spins up to 0.5 ms for a generation after <paramref name="seen"/>, then sleeps until released.</summary>
    private int AwaitGeneration(int index, int seen)
    {
        var wait = new SpinWait();
        var until = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
        while (true)
        {
            var generation = Volatile.Read(ref _generation);
            if (generation != seen || _stopping)
            {
                return generation;
            }
            if (System.Diagnostics.Stopwatch.GetTimestamp() < until)
            {
                wait.SpinOnce(sleep1Threshold: -1);
                continue;
            }
            Interlocked.Exchange(ref _sleeping[index - 1], 1);
            generation = Volatile.Read(ref _generation);
            if (generation == seen && !_stopping)
            {
                _go[index - 1].Wait(); // a release left over from an earlier run only brings it back to this check
            }
            Interlocked.Exchange(ref _sleeping[index - 1], 0);
            wait = new SpinWait();
            until = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
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
