using Via.Kernel.Cgroups;

namespace Via.Mechanisms;

/// <summary>Removes a route's host changes once no process of it is left, then its journal.</summary>
public static class Teardown
{
    /// <summary>True while processes of the route remain (its cgroup is populated).</summary>
    public static bool HasMembers(ActiveRoute route) => route.Cgroup is { } cg && Cgroup2.IsPopulated(cg);

    /// <summary>Undoes every change of the route; the journal goes only when all of them are undone.</summary>
    public static List<string> Run(Host host, ActiveRoute route)
    {
        var failures = Applier.Undo(host, route.Changes);
        if (failures.Count == 0) Journal.Remove(route.Id);
        return failures;
    }

    /// <summary>Waits (polling cgroup.events) until the route has no process left.</summary>
    public static void WaitUntilEmpty(ActiveRoute route, TimeSpan poll)
    {
        while (HasMembers(route)) Thread.Sleep(poll);
    }
}
