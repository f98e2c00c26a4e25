using Akka.Actor;
using DistributedBackprop.Cluster.Contracts;

namespace DistributedBackprop.Cluster.Coordinator;

/// <summary>
/// The coordinator's picture of the cluster: the members, which of them are unreachable, each node's weights cache,
/// the nodes whose training options matched (only they count towards --min-nodes) and where each worker runs.
/// Plain state — the actor feeds it cluster events and answers, and asks it who may be used.
/// </summary>
public sealed class ClusterView(Address self)
{
    private readonly HashSet<Address> _members = [];
    private readonly HashSet<Address> _unreachable = [];
    private readonly HashSet<Address> _leaving = [];
    private readonly Dictionary<Address, IActorRef> _caches = [];
    private readonly HashSet<string> _accepted = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, string> _placement = new(StringComparer.Ordinal);

    /// <summary>
    /// Changes with every change of the members, their reachability, caches, acceptance or leaving: what depends on them
    /// (the nodes that can own a range) is computed again only when it differs, not every step.
    /// </summary>
    public int Revision { get; private set; }

    /// <summary>The node the coordinator runs on.</summary>
    public Address Self { get; } = self;

    public IReadOnlySet<Address> Members => _members;

    public IReadOnlySet<Address> Unreachable => _unreachable;

    /// <summary>Members that are leaving gracefully (still answering until they are removed).</summary>
    public IReadOnlySet<Address> Leaving => _leaving;

    public IReadOnlyDictionary<Address, IActorRef> Caches => _caches;

    /// <summary>Worker id → the address of the node it runs on (as the worker's own answers showed).</summary>
    public IReadOnlyDictionary<string, string> Placement => _placement;

    /// <summary>Caches of nodes whose options matched: what --min-nodes counts.</summary>
    public int AcceptedCaches => _caches.Keys.Count(a => _accepted.Contains(a.ToString()));

    /// <summary>Members whose options matched: the nodes the job's worker count follows.</summary>
    public IEnumerable<Address> AcceptedNodes => _members.Where(m => _accepted.Contains(m.ToString()));

    /// <summary>
    /// Accepted members that are reachable, not leaving, and whose cache is known: the nodes that can own a range
    /// (sharded aggregation) — a node that just joined owns one from the next plan on.
    /// </summary>
    public IEnumerable<Address> RangeNodes =>
        AcceptedNodes.Where(m => !_unreachable.Contains(m) && !_leaving.Contains(m) && _caches.ContainsKey(m));

    /// <summary>A member started to leave the cluster gracefully.</summary>
    public void Left(Address node) => Revision += _leaving.Add(node) ? 1 : 0;

    public int AcceptedMembers => _members.Count(m => _accepted.Contains(m.ToString()));

    public void MemberUp(Address node) => Revision += _members.Add(node) ? 1 : 0;

    /// <summary>A member is reachable again: the workers on it that the caller may give work again.</summary>
    public IEnumerable<string> Reachable(Address node)
    {
        Revision += _unreachable.Remove(node) ? 1 : 0;
        return WorkersOn(node);
    }

    /// <summary>
    /// A node became unreachable or left: the workers on it, whose slices must go elsewhere. The coordinator's own node
    /// is never lost to itself (it would only be when this incarnation is going away).
    /// </summary>
    public IReadOnlyList<string> Lost(Address node)
    {
        if (node == Self)
        {
            return [];
        }
        Revision += _unreachable.Add(node) ? 1 : 0;
        return WorkersOn(node).ToList();
    }

    /// <summary>A member was removed: it is forgotten (its workers' placement stays until they answer elsewhere).</summary>
    public void Removed(Address node)
    {
        _members.Remove(node);
        _caches.Remove(node);
        _unreachable.Remove(node);
        _leaving.Remove(node);
        _accepted.Remove(node.ToString());
        Revision++;
    }

    /// <summary>The weights cache of a member; false (and ignored) for a node that is not one.</summary>
    public bool CacheFound(Address node, IActorRef cache)
    {
        if (!_members.Contains(node))
        {
            return false;
        }
        _caches[node] = cache;
        Revision++;
        return true;
    }

    /// <summary>
    /// A member's registration: accepted when its options' hash is the coordinator's (<paramref name="newlyAccepted"/>
    /// the first time). A refused node learns nothing of this run: neither its id nor the coordinator's options' hash.
    /// </summary>
    public NodeVerdict Register(Address node, string nodeHash, string runId, string coordinatorHash, out bool newlyAccepted)
    {
        var accepted = nodeHash == coordinatorHash;
        newlyAccepted = accepted && _accepted.Add(node.ToString());
        Revision += newlyAccepted ? 1 : 0;
        return accepted
            ? new NodeVerdict(true, runId, "")
            : new NodeVerdict(false, "", $"this node was started with training options (hash {nodeHash}) that differ from the coordinator's; start every node with the same options");
    }

    public void Place(string worker, string node) => _placement[worker] = node;

    /// <summary>Where a worker runs, or null while unknown.</summary>
    public string? PlacementOf(string worker) => _placement.GetValueOrDefault(worker);

    /// <summary>Whether the worker runs on a member that is unreachable now (and may come back with it).</summary>
    public bool OnUnreachableMember(string worker) =>
        _placement.TryGetValue(worker, out var node) && _unreachable.Any(m => m.ToString() == node);

    /// <summary>A member that is not unreachable: work may go there.</summary>
    public bool IsUsable(Address node) => _members.Contains(node) && !_unreachable.Contains(node);

    /// <summary>The caches that a new weights version goes to: every node's but the unreachable ones'.</summary>
    public IEnumerable<IActorRef> ReachableCaches =>
        _caches.Where(c => !_unreachable.Contains(c.Key)).Select(c => c.Value);

    private IEnumerable<string> WorkersOn(Address node) =>
        _placement.Where(p => p.Value == node.ToString()).Select(p => p.Key);
}
