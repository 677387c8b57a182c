using Via.Kernel.Cgroups;
using Via.Mechanisms.Cgroup;

namespace Via.Mechanisms;

/// <summary>Removes a route's host changes once no process of it is left, then its journal.</summary>
public static class Teardown
{
    /// <summary>True while processes of the route remain (its cgroup is populated).</summary>
    public static bool HasMembers(ActiveRoute route) => route.Cgroup is { } cg && Cgroup2.IsPopulated(CgroupPaths.Resolve(cg));

    /// <summary>PIDs in the route's cgroup.</summary>
    public static List<int> Members(ActiveRoute route) => route.Cgroup is { } cg ? Cgroup2.Processes(CgroupPaths.Resolve(cg)) : [];

    /// <summary>
    /// Undoes every change of the route, in the network namespace it was made in; the journal goes
    /// only when all of them are undone. A namespace that is gone took its rules and routes along.
    /// </summary>
    public static List<string> Run(ActiveRoute route, Action? undone = null)
    {
        using var host = Host.ForNetwork(route.NetworkNamespace);
        var changes = host is null ? route.Changes.Where(c => c is not Changes.AddRoute and not Changes.AddRule).ToList() : route.Changes;
        var failures = Applier.Undo(host ?? new Host(), changes, undone);
        if (failures.Count == 0) Journal.Remove(route.Id);
        return failures;
    }

    /// <summary>
    /// Waits (polling cgroup.events) until the route has no process left: every
    /// <paramref name="poll"/> at first, then less often, up to once a second, for daemons that run for days.
    /// </summary>
    public static void WaitUntilEmpty(ActiveRoute route, TimeSpan poll)
    {
        for (var wait = poll; HasMembers(route); wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, TimeSpan.TicksPerSecond)))
            Thread.Sleep(wait);
    }

    /// <summary>
    /// <c>via down</c> on a route that still has processes: takes away its way out (the gateway and
    /// on-link routes, the source rules) but keeps its fwmark rules, the unreachable defaults and
    /// the cgroup, so its programs fail closed instead of falling back to the default route. The
    /// rest goes when they exit (their via, the reaper, or <c>via gc</c>).
    /// </summary>
    public static (ActiveRoute Route, List<string> Failures) CutOff(ActiveRoute route)
    {
        using var host = Host.ForNetwork(route.NetworkNamespace);
        var ways = route.Changes.Where(c => c is Changes.AddRoute { Route.Type: not Kernel.Netlink.RouteType.Unreachable }
            or Changes.AddRule { Rule.Source: not null }).ToList();
        var failures = host is null ? [] : Applier.Undo(host, ways);
        var down = route with { Down = true };
        Journal.Write(down);
        return (down, failures);
    }
}
