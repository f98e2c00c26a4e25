namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>Slices [First, First + Count) of the current step given to one worker; Copy marks a speculative duplicate.</summary>
public sealed record Assignment(string Worker, int First, int Count, bool Copy)
{
    public int End => First + Count;
}

/// <summary>
/// Who computes which slices of the current step, and what to do when a worker is lost, slow or wrong. Pure logic —
/// the coordinator actor feeds it cluster events and results; the canonical tree makes every re-assignment harmless
/// (a slice's sum is the same whoever computes it, and the first result for a slice wins).
/// </summary>
public sealed class WorkAssignment
{
    private readonly List<string> _workers;
    private readonly HashSet<string> _dead = [];
    private readonly Dictionary<string, string> _excluded = [];
    private readonly List<Assignment> _assignments = [];
    private readonly HashSet<int> _recomputed = [];
    private readonly HashSet<string> _answered = [];
    private readonly Dictionary<string, DateTime> _silentSince = [];
    private int _nextSpare;

    public WorkAssignment(int sliceCount, IEnumerable<string> workers)
    {
        SliceCount = sliceCount;
        _workers = workers.ToList();
    }

    public int SliceCount { get; }

    /// <summary>Every worker of the job, the ones a joining node brought included, in the order they were added.</summary>
    public IReadOnlyList<string> All => _workers;

    /// <summary>
    /// A worker that a node joining mid-run brings: it gets no work (it counts as dead) until it says it started.
    /// </summary>
    public void Add(string worker)
    {
        if (!_workers.Contains(worker))
        {
            _workers.Add(worker);
            _dead.Add(worker);
        }
    }

    /// <summary>Workers that may be given work: not on a lost node, not excluded.</summary>
    public IReadOnlyList<string> Alive => _workers.Where(w => !_dead.Contains(w) && !_excluded.ContainsKey(w)).ToList();

    public IReadOnlyDictionary<string, string> Excluded => _excluded;

    public IReadOnlyList<Assignment> Current => _assignments;

    public bool MarkDead(string worker) => _workers.Contains(worker) && _dead.Add(worker);

    /// <summary>A worker (re)started on a reachable node: it may be given work again, silent or not.</summary>
    public bool MarkAlive(string worker)
    {
        _silentSince.Remove(worker);
        return _dead.Remove(worker);
    }

    public bool IsDead(string worker) => _dead.Contains(worker);

    /// <summary>Stops giving work to a worker that returned corrupt results.</summary>
    public void Exclude(string worker, string reason) => _excluded.TryAdd(worker, reason);

    /// <summary>
    /// How long a worker that went silent is left out of the step plan. A worker that has just died would otherwise
    /// hold up every step by the straggler deadline until the failure detector notices (~3 s); a slow one would be
    /// handed more work than it can do. After this it is tried again, so a worker that only missed a message rejoins.
    /// </summary>
    public static readonly TimeSpan SilenceGrace = TimeSpan.FromSeconds(5);

    /// <summary>Workers given work in an earlier step that have sent nothing back since (a copy did it for them).</summary>
    public IReadOnlyCollection<string> Silent => _silentSince.Keys;

    /// <summary>Live workers that are not silent; all live ones if every one is.</summary>
    public IReadOnlyList<string> Ready
    {
        get
        {
            var ready = Alive.Where(w => !_silentSince.ContainsKey(w)).ToList();
            return ready.Count > 0 ? ready : Alive;
        }
    }

    /// <summary>
    /// Cuts work items other than slices (data-statistics chunks, evaluation chunks) into contiguous runs, one per
    /// <see cref="Ready"/> worker; a worker's share that is not consecutive (only the missing items) goes out as one
    /// run per consecutive stretch. <paramref name="items"/> are sorted.
    /// </summary>
    public IEnumerable<(string Worker, int First, int Count)> Spread(IReadOnlyList<int> items)
    {
        var ready = Ready;
        for (var k = 0; k < ready.Count; k++)
        {
            var from = k * items.Count / ready.Count;
            var to = (k + 1) * items.Count / ready.Count;
            var i = from;
            while (i < to)
            {
                var j = i + 1;
                while (j < to && items[j] == items[j - 1] + 1)
                {
                    j++;
                }
                yield return (ready[k], items[i], j - i);
                i = j;
            }
        }
    }

    /// <summary>
    /// Any result from <paramref name="worker"/>, late or not: it is working, and is not made silent for this step. A
    /// silent worker stays out until the grace is over even when its late result comes: it is slow, and back in at once
    /// it would cost every other step the straggler deadline (a node slowed by 500 ms a reply made a 12 s run take 60 s).
    /// </summary>
    public void Answered(string worker) => _answered.Add(worker);

    /// <summary>
    /// Cuts the step's slices into contiguous runs, one per live worker that is not silent (all live ones if every one
    /// is). Empty when no worker is alive.
    /// </summary>
    public IReadOnlyList<Assignment> BeginStep(DateTime now)
    {
        foreach (var worker in _assignments.Select(a => a.Worker).Where(w => !_answered.Contains(w)))
        {
            _silentSince.TryAdd(worker, now);
        }
        foreach (var worker in _silentSince.Where(p => now - p.Value >= SilenceGrace).Select(p => p.Key).ToList())
        {
            _silentSince.Remove(worker);
        }
        _answered.Clear();
        _assignments.Clear();
        _recomputed.Clear();
        var alive = Ready;
        for (var k = 0; k < alive.Count; k++)
        {
            var first = k * SliceCount / alive.Count;
            var end = (k + 1) * SliceCount / alive.Count;
            if (end > first)
            {
                _assignments.Add(new Assignment(alive[k], first, end - first, Copy: false));
            }
        }
        return _assignments.ToList();
    }

    /// <summary>The uncovered parts of a lost worker's runs, each given to another live worker at once.</summary>
    public IReadOnlyList<Assignment> Reassign(string lostWorker, Func<int, bool> isCovered)
    {
        var ranges = _assignments.Where(a => a.Worker == lostWorker)
            .SelectMany(a => Uncovered(a.First, a.End, isCovered)).ToList();
        return GiveToOthers(ranges, exclude: [lostWorker], copy: false);
    }

    /// <summary>A slice whose result was corrupt (NaN/Inf) is computed again elsewhere, once; true if it was sent.</summary>
    public IReadOnlyList<Assignment> Recompute(int first, int end, string suspect)
    {
        if (Enumerable.Range(first, end - first).Any(s => !_recomputed.Add(s)))
        {
            return [];
        }
        return GiveToOthers([(first, end)], exclude: [suspect], copy: false);
    }

    /// <summary>Whether every slice of the range was already recomputed once (a second bad result is the data's).</summary>
    public bool WasRecomputed(int first, int end) => Enumerable.Range(first, end - first).All(_recomputed.Contains);

    /// <summary>
    /// A copy of every uncovered run, preferably on a worker that has finished its own share. When nobody is free, a
    /// busy worker that does not hold the run yet gets it, and when every live worker holds it, one of them is asked
    /// again: an order lost with a partition or a dying node is never answered, and a step must not wait on it for
    /// ever (a repeated order is only computed twice; the first result wins).
    /// </summary>
    public IReadOnlyList<Assignment> Speculate(Func<int, bool> isCovered)
    {
        var ranges = _assignments.SelectMany(a => Uncovered(a.First, a.End, isCovered)).Distinct().ToList();
        var alive = Alive;
        var idle = alive.Where(w => _assignments.Where(a => a.Worker == w).All(a => !Uncovered(a.First, a.End, isCovered).Any()))
            .ToList();
        var copies = new List<Assignment>();
        var i = 0;
        foreach (var (first, end) in ranges)
        {
            var holders = _assignments.Where(a => a.First < end && first < a.End).Select(a => a.Worker).ToHashSet();
            var helpers = idle.Where(w => !holders.Contains(w)).ToList();
            if (helpers.Count == 0)
            {
                helpers = alive.Where(w => !holders.Contains(w)).ToList();
            }
            if (helpers.Count == 0)
            {
                helpers = alive.ToList();
            }
            if (helpers.Count == 0)
            {
                continue;
            }
            copies.Add(new Assignment(helpers[i++ % helpers.Count], first, end - first, Copy: true));
        }
        _assignments.AddRange(copies);
        return copies;
    }

    private List<Assignment> GiveToOthers(IEnumerable<(int First, int End)> ranges, IReadOnlyCollection<string> exclude,
        bool copy)
    {
        var candidates = Alive.Where(w => !exclude.Contains(w)).ToList();
        var given = new List<Assignment>();
        if (candidates.Count == 0)
        {
            return given;
        }
        foreach (var (first, end) in ranges)
        {
            var worker = candidates[_nextSpare++ % candidates.Count];
            given.Add(new Assignment(worker, first, end - first, copy));
        }
        _assignments.AddRange(given);
        return given;
    }

    /// <summary>Maximal runs of uncovered slices within [first, end).</summary>
    public static IEnumerable<(int First, int End)> Uncovered(int first, int end, Func<int, bool> isCovered)
    {
        var s = first;
        while (s < end)
        {
            while (s < end && isCovered(s))
            {
                s++;
            }
            var start = s;
            while (s < end && !isCovered(s))
            {
                s++;
            }
            if (s > start)
            {
                yield return (start, s);
            }
        }
    }
}
