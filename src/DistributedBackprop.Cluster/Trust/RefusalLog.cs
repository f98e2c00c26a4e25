using Akka.Event;

namespace DistributedBackprop.Cluster.Trust;

/// <summary>
/// Logs refusals at most once a second per kind, saying how many went unlogged since: a flood of them is counted in full
/// (<c>distbp_peer_refusals_total</c>) but cannot flood the log.
/// </summary>
public sealed class RefusalLog
{
    private static readonly long Interval = 1000;
    private readonly Dictionary<string, (long LastLogged, long Unlogged)> _kinds = new(StringComparer.Ordinal);

    /// <summary>Logs <paramref name="line"/> (a warning) unless this kind was logged less than a second ago.</summary>
    public void Warn(ILoggingAdapter log, string kind, string line)
    {
        long unlogged;
        lock (_kinds)
        {
            var now = Environment.TickCount64;
            var (last, skipped) = _kinds.GetValueOrDefault(kind, (now - Interval, 0));
            if (now - last < Interval)
            {
                _kinds[kind] = (last, skipped + 1);
                return;
            }
            _kinds[kind] = (now, 0);
            unlogged = skipped;
        }
        log.Warning(unlogged == 0 ? "{0}" : "{0} ({1} more of this kind since the last such line)", line, unlogged);
    }
}
