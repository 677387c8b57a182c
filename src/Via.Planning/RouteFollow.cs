using System.Net;
using System.Net.Sockets;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Changes;
using Via.Mechanisms.Guard;

namespace Via.Planning;

/// <summary>
/// What a live route needs, now, to be what it was made to be for IFACE as the host shows it
/// (DESIGN.md point 12): IFACE found again by name, its gateway and source found again as at
/// set-up, the routing re-planned with the route's own numbers, and what the kernel lacks or has
/// in excess compared with that.
/// </summary>
/// <param name="Health">up, or waiting (IFACE gone, down, without address or gateway).</param>
/// <param name="Waiting">Why it waits; null when up.</param>
/// <param name="Add">Routes and rules missing from the kernel, and guards to attach for IFACE's new index.</param>
/// <param name="Remove">Routes and rules of via's that are in the kernel but no longer fit (a rule from IFACE's old address).</param>
/// <param name="Changes">The route's changes once this is done: what its journal lists.</param>
public sealed record FollowPlan(string Health, string? Waiting, IReadOnlyList<HostChange> Add, IReadOnlyList<HostChange> Remove,
    List<HostChange> Changes, string Key, string? Gateway)
{
    /// <summary>True when the kernel or the journal has something to be done about.</summary>
    public bool HasWork(ActiveRoute route) => Add.Count > 0 || Remove.Count > 0 || !SameChanges(route.Changes)
        || Health != route.Health || Waiting != route.Waiting || Key != route.Key || Gateway != route.Gateway;

    /// <summary>
    /// The same changes as the journal's, in any order: the plan lists the route's own objects after
    /// the others, and a change added to the route later (a standing rule's program) comes after them
    /// in the journal; that alone is no work.
    /// </summary>
    private bool SameChanges(List<HostChange> journal) =>
        Changes.Count == journal.Count && Changes.All(journal.Contains) && journal.All(Changes.Contains);

    /// <summary>Re-made something the kernel or another program had taken away.</summary>
    public bool Repairs => Add.Count > 0;
}

public static class RouteFollow
{
    /// <summary>
    /// The plan for <paramref name="route"/> on <paramref name="host"/>. Pure. The numbers (mark,
    /// mask, table, priority) are the route's own, read from its fwmark rule: never allocated again,
    /// so the program's sockets, already marked, keep matching.
    /// </summary>
    public static FollowPlan Plan(ActiveRoute route, HostView host)
    {
        var numbers = Numbers(route);
        var request = new RouteRequest(route.Device,
            route.RequestedGateway is { } g ? IPAddress.Parse(g) : null,
            route.RequestedSource is { } s ? IPAddress.Parse(s) : null,
            route.RequestedTable,
            route.Owner,
            // --ip, from the change that made it: the route's key names its addresses.
            route.Changes.OfType<Mechanisms.Netns.CreateMacvlan>().FirstOrDefault()?.Attachment,
            // A named route's key names it.
            route.Name,
            route.Only);

        // The gateway is found again where a DHCP client or network manager puts it, never in the
        // route's own table: a stale default there would name the gateway IFACE had before.
        var others = host with { Routes = host.Routes.Where(r => r.Table != route.Table).ToList() };
        ResolvedRoute? resolved;
        string? waiting = null;
        try
        {
            resolved = RouteResolver.Resolve(request, others);
        }
        catch (PlanException e)
        {
            resolved = null;
            // What is missing, without the advice for a user starting a program ("...; try again"): via waits on its own.
            int advice = e.Message.IndexOf("; ", StringComparison.Ordinal);
            waiting = advice < 0 ? e.Message : e.Message[..advice];
        }

        // Waiting: no way out, only what fails closed (the unreachable defaults and the fwmark
        // rules): the same planner, given a route with no address in either family.
        var routing = Planner.Routing(resolved ?? new ResolvedRoute(new Link(0, route.Device, 0), null, null, null, null, []), numbers, route.Only).ToList();

        // IFACE by name: re-created, it has a new index, and the guards follow it. Gone, the old
        // guards stay: their index names no interface, so only loopback passes.
        var link = host.Links.FirstOrDefault(l => l.Name == route.Device);
        var guards = new List<HostChange>();
        var kept = new List<HostChange>();
        foreach (var c in route.Changes.Where(c => c is not AddRoute and not AddRule))
        {
            HostChange now = link is not null && c.ForDevice(link.Index) is { } moved && moved != c ? moved : c;
            // After a repair that failed half-way the journal may name a guard twice (old and new index): once is enough.
            if (!ReferenceEquals(now, c) && !guards.Contains(now)) guards.Add(now);
            if (!kept.Contains(now)) kept.Add(now);
        }

        var add = guards.Concat(routing.Where(c => !InKernel(c, host))).ToList();
        var remove = route.Changes.Where(c => c is AddRoute or AddRule && !routing.Contains(c) && InKernel(c, host)).ToList();
        string key = resolved is null ? route.Key : Planner.Key(route.NetworkNamespace, route.Mechanism, resolved, request);
        string? gateway = resolved is null ? route.Gateway : (resolved.Gateway4 ?? resolved.Gateway6)?.ToString();
        return new FollowPlan(resolved is null ? RouteHealth.Waiting : RouteHealth.Up, waiting, add, remove, [.. kept, .. routing], key, gateway);
    }

    /// <summary>The route's numbers, from the fwmark rule it was made with.</summary>
    public static RouteNumbers Numbers(ActiveRoute route)
    {
        var rule = route.Changes.OfType<AddRule>().Select(r => r.Rule).FirstOrDefault(r => r.Mark is not null)
            ?? throw new PlanException($"route {route.Id} has no fwmark rule in its journal {Journal.PathOf(route.Id)}; it cannot be re-made: 'via down {route.Id}' and run the program again");
        return new RouteNumbers(rule.Mark!.Value, rule.MarkMask ?? uint.MaxValue, rule.Table, rule.Priority);
    }

    /// <summary>Whether the kernel has this route or rule, as a dump shows it (the kernel fills in what via left out).</summary>
    public static bool InKernel(HostChange change, HostView host) => change switch
    {
        AddRoute(var r, _) => host.Routes.Any(k => Same(r, k)),
        AddRule(var r) => host.Rules.Any(k => Same(r, k)),
        _ => true,
    };

    private static bool Same(Route want, Route have) =>
        want.Family == have.Family && want.Table == have.Table && want.Type == have.Type && want.Protocol == have.Protocol
        && want.DestinationLength == have.DestinationLength
        && (want.DestinationLength == 0 || Equals(want.Destination, have.Destination))
        && Equals(want.Gateway, have.Gateway)
        // An IPv6 unreachable route is shown on lo; via adds it with no device.
        && (want.Type == RouteType.Unreachable || want.OutputLink == have.OutputLink)
        && Equals(want.PreferredSource, have.PreferredSource)
        // IPv6 routes added without a metric get 1024 (IP6_RT_PRIO_USER).
        && (want.Metric == have.Metric || (want.Metric == 0 && want.Family == AddressFamily.InterNetworkV6 && have.Metric == 1024));

    private static bool Same(Rule want, Rule have) =>
        want.Family == have.Family && want.Priority == have.Priority && want.Table == have.Table && want.Action == have.Action
        && want.Mark == have.Mark && (want.Mark is null || want.MarkMask == have.MarkMask)
        && Equals(want.Source, have.Source) && (want.Source is null || want.SourceLength == have.SourceLength)
        && Equals(want.Destination, have.Destination) && (want.Destination is null || want.DestinationLength == have.DestinationLength)
        && want.IpProtocol == have.IpProtocol && want.DestinationPorts == have.DestinationPorts
        && want.Protocol == have.Protocol;
}
