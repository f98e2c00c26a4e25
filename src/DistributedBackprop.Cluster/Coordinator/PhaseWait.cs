namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// The coordinator's one wait at a time, with a deadline, so that it never hangs: a phase (statistics, a step, an
/// evaluation) starts waiting with what to do when nudged (re-send, speculate) and a description for the failure
/// message. Each wait has its own number, so a timer tick of an earlier wait is ignored; a wait with no progress for
/// the bounded worker wait gives up. Plain logic — the actor owns the timer and does what <see cref="OnTick"/> says.
/// </summary>
public sealed class PhaseWait
{
    private int _phase;
    private int _waitingPhase;
    private DateTime _lastProgress = DateTime.UtcNow;
    private Action? _nudge;
    private Func<string>? _what;

    public enum Verdict
    {
        /// <summary>A tick of a wait that is over: nothing to do.</summary>
        Stale,
        /// <summary>Still waiting, with progress within the bound: nudge, and tick again.</summary>
        Nudge,
        /// <summary>No progress for the bound: give up on <see cref="Waiting"/>.</summary>
        GiveUp,
    }

    /// <summary>What the current wait is for ("step 12"), or "the job" when none has started.</summary>
    public string Waiting => _what?.Invoke() ?? "the job";

    /// <summary>Starts a new wait (ending the one before); returns its number, for its timer ticks.</summary>
    public int Start(Action nudge, Func<string> what, DateTime now)
    {
        _waitingPhase = ++_phase;
        _nudge = nudge;
        _what = what;
        _lastProgress = now;
        return _waitingPhase;
    }

    /// <summary>The current wait's number (a tick for it may be re-armed sooner).</summary>
    public int Current => _waitingPhase;

    /// <summary>Something the wait is for arrived: the deadline starts again.</summary>
    public void Progressed(DateTime now) => _lastProgress = now;

    /// <summary>Ends the current wait: its ticks are stale from now on.</summary>
    public void Stop() => _phase++;

    /// <summary>A timer tick of wait <paramref name="phase"/> at <paramref name="now"/>.</summary>
    public Verdict OnTick(int phase, DateTime now, TimeSpan bound)
    {
        if (phase != _waitingPhase || _phase != _waitingPhase)
        {
            return Verdict.Stale;
        }
        return now - _lastProgress > bound ? Verdict.GiveUp : Verdict.Nudge;
    }

    /// <summary>Does what the current wait does when nudged.</summary>
    public void Nudge() => _nudge?.Invoke();
}
