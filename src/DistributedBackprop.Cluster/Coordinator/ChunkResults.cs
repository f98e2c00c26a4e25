namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// Results that come back chunk by chunk (the data statistics, an evaluation), each chunk counted once whoever sent it
/// and in whatever order; complete when every chunk is in. The values are then combined in chunk order, so the outcome
/// does not depend on who computed what.
/// </summary>
public sealed class ChunkResults<T>(int chunks)
{
    private readonly T[] _values = new T[chunks];
    private readonly bool[] _done = new bool[chunks];
    private int _received;

    public int Chunks => chunks;

    public bool IsComplete => _received == chunks;

    /// <summary>The values by chunk (complete once <see cref="IsComplete"/>).</summary>
    public IReadOnlyList<T> Values => _values;

    /// <summary>A chunk in range that has not arrived yet.</summary>
    public bool IsAwaited(int chunk) => chunk >= 0 && chunk < chunks && !_done[chunk];

    /// <summary>Takes an awaited chunk's value; true when it was the last one.</summary>
    public bool Add(int chunk, T value)
    {
        _done[chunk] = true;
        _values[chunk] = value;
        return ++_received == chunks;
    }

    /// <summary>The chunks still awaited, in order (what a re-send asks for).</summary>
    public List<int> Missing => Enumerable.Range(0, chunks).Where(c => !_done[c]).ToList();
}
