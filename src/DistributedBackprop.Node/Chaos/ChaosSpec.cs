using System.Globalization;
using DistributedBackprop.Core;

namespace DistributedBackprop.Node.Chaos;

public enum ChaosAction
{
    /// <summary>SIGKILL the process; the launcher restarts it after the respawn delay unless told not to.</summary>
    Kill,
    /// <summary>SIGSTOP for the duration, then SIGCONT.</summary>
    Stop,
    /// <summary>Cut the node off from every other node for the duration (both directions), then heal.</summary>
    Partition,
    /// <summary>Delay the node's replies by the duration from the step on.</summary>
    Slow,
    /// <summary>The node returns a NaN gradient once at the step.</summary>
    Nan,
    /// <summary>A new node is started and joins the cluster (join:@STEP; it is node-N, node-N+1, … in join order).</summary>
    Join,
    /// <summary>The node leaves the cluster gracefully (SIGTERM) and is not started again.</summary>
    Leave,
}

/// <summary>
/// One fault to inject: ACTION:TARGET@STEP[/DURATION]; Node is null when the target is the coordinator, or for a join
/// (which has no target: it starts a node).
/// </summary>
public sealed record ChaosEvent(ChaosAction Action, int? Node, long Step, TimeSpan Duration, string Text)
{
    /// <summary>For target owner-K: the node that owns range K of sharded aggregation when the event fires.</summary>
    public int? Owner { get; init; }

    public bool TargetsCoordinator => Node is null && Owner is null && Action != ChaosAction.Join;
}

/// <summary>
/// Parses <c>--chaos</c>: a comma-separated list of ACTION:TARGET@STEP[/DURATION], ACTION one of kill, stop, partition,
/// slow, nan, leave; TARGET node-K (launch order from 0), coordinator, or owner-K (the node that owns range K with
/// --aggregation sharded: ranges are cut over the nodes in the order of their addresses); DURATION like 5s or 500ms (stop, partition and
/// slow need one); and join:@STEP, a new node (node-N for the first join of N nodes, then node-N+1, …). Example:
/// kill:node-2@30,stop:node-1@60/5s,join:@80,leave:node-3@150.
/// </summary>
public static class ChaosSpec
{
    public static IReadOnlyList<ChaosEvent> Parse(string? spec, int nodes)
    {
        var events = new List<ChaosEvent>();
        if (string.IsNullOrWhiteSpace(spec))
        {
            return events;
        }
        var items = spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        // Joined nodes may be targets too.
        var targets = nodes + items.Count(i => i.StartsWith("join:", StringComparison.Ordinal));
        foreach (var raw in items)
        {
            events.Add(ParseOne(raw, targets));
        }
        return events.OrderBy(e => e.Step).ToList();
    }

    private static ChaosEvent ParseOne(string text, int nodes)
    {
        string Bad(string what) =>
            $"--chaos: '{text}' {what}; use ACTION:TARGET@STEP[/DURATION], e.g. kill:node-2@30 or stop:node-1@60/5s.";
        var colon = text.IndexOf(':');
        var at = text.IndexOf('@');
        if (colon <= 0 || at < colon)
        {
            throw new DistbpInputException(Bad("is not of the form"));
        }
        var action = text[..colon] switch
        {
            "kill" => ChaosAction.Kill,
            "stop" => ChaosAction.Stop,
            "partition" => ChaosAction.Partition,
            "slow" => ChaosAction.Slow,
            "nan" => ChaosAction.Nan,
            "join" => ChaosAction.Join,
            "leave" => ChaosAction.Leave,
            var other => throw new DistbpInputException(Bad($"has an unknown action '{other}' (kill, stop, partition, slow, nan, join, leave)")),
        };
        var target = text[(colon + 1)..at];
        int? node = null;
        int? owner = null;
        if (action == ChaosAction.Join)
        {
            if (target.Length > 0)
            {
                throw new DistbpInputException(Bad("names a target; a join starts a new node: join:@STEP"));
            }
        }
        else if (target.StartsWith("owner-", StringComparison.Ordinal))
        {
            if (!int.TryParse(target.AsSpan(6), NumberStyles.None, CultureInfo.InvariantCulture, out var k) || k >= nodes)
            {
                throw new DistbpInputException(Bad($"targets '{target}'; use owner-0 … owner-{nodes - 1}"));
            }
            owner = k;
        }
        else if (target != "coordinator")
        {
            if (!target.StartsWith("node-", StringComparison.Ordinal)
                || !int.TryParse(target.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var k) || k >= nodes)
            {
                throw new DistbpInputException(Bad($"targets '{target}'; use coordinator, node-0 … node-{nodes - 1} or owner-0 … owner-{nodes - 1}"));
            }
            node = k;
        }
        var rest = text[(at + 1)..];
        var slash = rest.IndexOf('/');
        var stepText = slash >= 0 ? rest[..slash] : rest;
        if (!long.TryParse(stepText, NumberStyles.None, CultureInfo.InvariantCulture, out var step))
        {
            throw new DistbpInputException(Bad($"has step '{stepText}', not a whole number"));
        }
        var duration = TimeSpan.Zero;
        if (slash >= 0)
        {
            duration = ParseDuration(rest[(slash + 1)..]) ?? throw new DistbpInputException(Bad("has a duration that is not like 5s or 500ms"));
        }
        if (action is ChaosAction.Stop or ChaosAction.Partition or ChaosAction.Slow && duration <= TimeSpan.Zero)
        {
            throw new DistbpInputException(Bad($"needs a duration for {text[..colon]}, e.g. /5s"));
        }
        return new ChaosEvent(action, node, step, duration, text) { Owner = owner };
    }

    public static TimeSpan? ParseDuration(string text)
    {
        var (number, scale) = text.EndsWith("ms", StringComparison.Ordinal) ? (text[..^2], 1.0)
            : text.EndsWith('s') ? (text[..^1], 1000.0)
            : (text, double.NaN);
        return double.IsFinite(scale) && double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value > 0
            ? TimeSpan.FromMilliseconds(value * scale)
            : null;
    }
}
