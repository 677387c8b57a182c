using System.Net;
using System.Net.Sockets;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Changes;
using Via.Mechanisms.Guard;

namespace Via.Planning;

/// <summary>Everything one <c>via run</c> will do to the host, in order, before it does any of it.</summary>
public sealed record Plan(
    string RouteId,
    RouteRequest Request,
    ResolvedRoute Route,
    RouteNumbers Numbers,
    IMechanism Mechanism,
    IReadOnlyList<HostChange> Changes,
    LaunchAdditions Launch,
    string Membership);

/// <summary>route + mechanism + host view -> <see cref="Plan"/>. Pure: reads nothing, changes nothing.</summary>
public static class Planner
{
    /// <summary>rtnetlink protocol value on every rule and route via makes ("proto 86"): via's tag, 'V'.</summary>
    public const byte Protocol = 86;

    /// <summary>Metric of the unreachable default that ends each table: the kill switch.</summary>
    public const uint KillSwitchMetric = 4278198272;

    /// <param name="egressGuard">False only where the host refuses cgroup eBPF and the mechanism tags without it (see <see cref="IMechanism.NeedsCgroupBpf"/>).</param>
    /// <param name="direct">--ip as planned (<see cref="DirectPlanner"/>), for a mechanism that <see cref="IMechanism.AttachesDirectly"/>.</param>
    public static Plan Make(RouteRequest request, ResolvedRoute route, HostView host, IMechanism mechanism, RouteNumbers numbers, string routeId, bool egressGuard = true,
        DirectAttachment? direct = null)
    {
        if (request.Only is not null && !mechanism.FiltersDestinations)
            throw new PlanException(DestinationFilters.Refusal(mechanism));
        if (direct is not null && !mechanism.AttachesDirectly)
            throw new PlanException($"--ip needs --method netns: method {mechanism.Name} has no namespace of its own to give the program an address in");
        // Every route has a cgroup of its own, whatever tags its sockets: its programs start in it
        // (membership, lifetime, counters), and the egress guard on it is the backstop for every
        // packet the mark and the table do not decide (DESIGN.md point 11).
        if (!request.Owner.IsCgroup && !mechanism.MatchesOwners)
            throw new PlanException($"method {mechanism.Name} routes only the programs via starts, not every socket of {request.Owner}; "
                + $"use a method that matches packets by owner ({string.Join(", ", Registry.All.Where(m => m.MatchesOwners).Select(m => m.Name))})");
        string cgroup = RouteCgroups.PathOf(host, routeId);
        var tag = Tagging(routeId, numbers.Mark, host, route, cgroup, request.Owner) with { Table = numbers.Table, Priority = numbers.Priority, Direct = direct };
        var changes = new List<HostChange>(RouteCgroups.Create(host, cgroup));
        changes.AddRange(mechanism.Tag(tag));
        // The guard passes IFACE, or the link a mechanism gives the program in a network namespace of
        // its own, where IFACE does not exist (netns: the namespace's end of its veth pair).
        if (egressGuard)
            changes.Add(mechanism.GuardDevice(tag) is var (index, name)
                ? new AttachEgressGuard(cgroup, index, name, Fixed: true)
                : new AttachEgressGuard(cgroup, route.Link.Index, route.Link.Name) { Only = request.Only });
        changes.AddRange(Routing(route, numbers, request.Only));
        return new Plan(routeId, request, route, numbers, mechanism, changes, mechanism.Launch(tag), cgroup);
    }

    /// <summary>What a mechanism is told of a route (also when a route is re-planned or joined).</summary>
    public static TagRequest Tagging(string routeId, uint mark, HostView host, ResolvedRoute route, string cgroup, RouteOwner owner = default) =>
        new(routeId, mark, host, route.Link.Index, cgroup, Device: route.Link.Name,
            Source4: route.Routes4 ? route.Source4 : null, Source6: route.Routes6 ? route.Source6 : null, Owner: owner);

    /// <summary>
    /// What makes two invocations the same route, so they share its kernel objects: the network
    /// namespace, the mechanism, the interface, next hops, source addresses, a requested table, and
    /// an owner other than the route's cgroup (a uid or gid: another route than a program's), and the
    /// destinations it carries (--only).
    /// </summary>
    public static string Key(string networkNamespace, IMechanism mechanism, ResolvedRoute r, RouteRequest request) =>
        Key(networkNamespace, mechanism.Name, r, request);

    /// <summary>The same, for a route re-resolved by its watcher (which knows its mechanism by name).</summary>
    public static string Key(string networkNamespace, string mechanism, ResolvedRoute r, RouteRequest request) =>
        string.Join('|', networkNamespace, mechanism, r.Link.Name, r.Gateway4, r.Source4, r.Gateway6, r.Source6, request.Table)
        + (request.Owner.IsCgroup ? "" : "|" + request.Owner)
        + (request.Direct is { } d ? "|" + d.Key : "")
        + (request.Name is { } name ? "|name:" + name : "")
        + (request.Only is { } only ? "|only=" + only : "");

    /// <summary>The route's name in via ls, via down and the journal: unique while it exists.</summary>
    public static string RouteId(RouteNumbers n) => $"t{n.Table}";

    /// <summary>
    /// The table and rules of one route (DESIGN.md points 1-6): the interface's on-link prefixes and
    /// default route in the table, an unreachable default after them in both families (so a
    /// vanished interface or a missing IPv6 route fails closed instead of falling through to the
    /// main table), a fwmark rule, and a rule for the route's source addresses so that replies pass
    /// strict rp_filter without touching any sysctl. Rules sit after the local table (priority 0),
    /// so loopback and the host's own addresses keep working.
    /// <para>
    /// With <paramref name="only"/> (--only), the marked packets take the table only to the
    /// destinations of a filter: one rule per filter and family (a network's family only), with the
    /// filter's destination, protocol and ports as the rule's selectors. A marked packet that no rule
    /// takes goes on to the main table, the default path. The table's unreachable defaults, the kill
    /// switch, then hold for exactly the filtered destinations.
    /// </para>
    /// </summary>
    public static IEnumerable<HostChange> Routing(ResolvedRoute route, RouteNumbers n, DestinationFilters? only = null)
    {
        uint table = n.Table;
        var link = route.Link;
        foreach (var family in new[] { AddressFamily.InterNetwork, AddressFamily.InterNetworkV6 })
        {
            bool v4 = family == AddressFamily.InterNetwork;
            IPAddress? source = v4 ? route.Source4 : route.Source6;
            IPAddress? gateway = v4 ? route.Gateway4 : route.Gateway6;
            bool routed = v4 ? route.Routes4 : route.Routes6;
            if (routed)
            {
                foreach (var c in route.Connected.Where(c => c.Family == family))
                    yield return new AddRoute(c with { Table = table, Protocol = Protocol, PreferredSource = v4 ? source : null }, link.Name);
                yield return new AddRoute(new Route(family, table, RouteType.Unicast, Gateway: gateway, OutputLink: link.Index,
                    PreferredSource: v4 ? source : null, Protocol: Protocol, Scope: gateway is null ? InterfaceAddress.ScopeLink : (byte)0), link.Name);
            }
            yield return new AddRoute(new Route(family, table, RouteType.Unreachable, Metric: KillSwitchMetric, Protocol: Protocol));
        }
        foreach (var rule in MarkRules(n, only)) yield return new AddRule(rule);
        if (route.Routes4 && route.Source4 is { } s4)
            yield return new AddRule(new Rule(AddressFamily.InterNetwork, n.Priority, table, Source: s4, SourceLength: 32, Protocol: Protocol));
        if (route.Routes6 && route.Source6 is { } s6)
            yield return new AddRule(new Rule(AddressFamily.InterNetworkV6, n.Priority, table, Source: s6, SourceLength: 128, Protocol: Protocol));
    }

    /// <summary>
    /// The fwmark rules: one per family, or with <paramref name="only"/> one per filter and family it
    /// covers, least selective first (see <see cref="Rule.SelectorCount"/>: undone in reverse, the most
    /// selective goes first and a rule's deletion never takes another's place).
    /// </summary>
    public static IEnumerable<Rule> MarkRules(RouteNumbers n, DestinationFilters? only)
    {
        var rules = new List<Rule>();
        foreach (var family in new[] { AddressFamily.InterNetwork, AddressFamily.InterNetworkV6 })
        {
            var plain = new Rule(family, n.Priority, n.Table, Mark: n.Mark, MarkMask: n.MarkMask, Protocol: Protocol);
            if (only is null) rules.Add(plain);
            else
                rules.AddRange(only.For(family).Select(f => plain with
                {
                    // A /0 network is every destination of its family: no 'to' selector.
                    Destination = f.Network is not null && f.PrefixLength > 0 ? f.Network : null,
                    DestinationLength = f.Network is not null ? f.PrefixLength : (byte)0,
                    IpProtocol = f.Port?.ProtocolNumber ?? 0,
                    DestinationPorts = f.Ports,
                }));
        }
        return rules.OrderBy(r => r.SelectorCount);
    }
}
