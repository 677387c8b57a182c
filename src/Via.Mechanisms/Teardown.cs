using Via.Kernel.Cgroups;
using Via.Mechanisms.Cgroup;

namespace Via.Mechanisms;

/// <summary>Whether processes remain in a route. <see cref="Unknown"/> (why it cannot be read) counts as "they may": never as empty.</summary>
public readonly record struct Membership(bool Populated, string? Unknown)
{
    public bool MayHaveMembers => Populated || Unknown is not null;
}

/// <summary>What a teardown left: changes it could not undo, and why the route as a whole could not be finished.</summary>
public sealed record TeardownResult(List<Leftover> Leftovers, string? Kept)
{
    public static readonly TeardownResult Done = new([], null);

    public bool Complete => Leftovers.Count == 0 && Kept is null;

    /// <summary>One line each, for "via: LINE".</summary>
    public List<string> Problems(string routeId)
    {
        var lines = Leftovers.Select(l => "could not undo: " + l).ToList();
        if (Kept is not null) lines.Add($"route {routeId} kept: {Kept}");
        else if (Leftovers.Count > 0) lines.Add($"route {routeId}: what is left is recorded in {Journal.PathOf(routeId)}; 'via gc' retries it");
        return lines;
    }
}

/// <summary>Removes a route's host changes once no process of it is left, then its journal.</summary>
public static class Teardown
{
    /// <summary>
    /// Whether processes remain in the route's cgroup. A cgroup that does not exist has none; one
    /// whose state cannot be read (cgroup.events missing or unreadable, no cgroup2 visible) is
    /// <see cref="Membership.Unknown"/>: tearing down a route whose programs still run would send
    /// their traffic out of the default route. Read-only callers pass <paramref name="mayMount"/> false.
    /// </summary>
    public static Membership Occupancy(ActiveRoute route, bool mayMount = false)
    {
        // Standing rules keep their route, process or not: they are wanted until 'via rule del'.
        if (route.Rules.Count > 0) return new Membership(true, null);
        // A cgroup of someone else's attached to the route (a service): the route lives until it is
        // detached or the cgroup is removed (the service stopped), whether or not it has processes
        // now (a service between two of its processes is still the service).
        if (route.AttachedCgroups.Count > 0)
        {
            string? root = mayMount ? CgroupPaths.Root() : CgroupPaths.FindForReading();
            if (root is null) return new Membership(false, $"no cgroup2 filesystem is mounted here to find its attached cgroups");
            if (route.AttachedCgroups.Any(c => Directory.Exists(root + c.Path))) return new Membership(true, null);
        }
        if (route.Cgroup is not { } recorded) return new Membership(false, null);
        string? path = CgroupPaths.TryResolve(recorded, mayMount);
        if (path is null) return new Membership(false, $"no cgroup2 filesystem is mounted here to read {recorded}");
        try
        {
            return new Membership(Cgroup2.Populated(path) ?? false, null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            return new Membership(false, $"cannot read the membership of its cgroup {path}: {e.Message}");
        }
    }

    /// <summary>True while processes of the route may remain (see <see cref="Occupancy"/>).</summary>
    public static bool HasMembers(ActiveRoute route, bool mayMount = false) => Occupancy(route, mayMount).MayHaveMembers;

    /// <summary>PIDs in the route's cgroup; empty when it is gone or cannot be read (for listing only).</summary>
    public static List<int> Members(ActiveRoute route, bool mayMount = false) =>
        route.Cgroup is { } cg && CgroupPaths.TryResolve(cg, mayMount) is { } path ? Cgroup2.Processes(path) : [];

    /// <summary>
    /// Undoes every change of the route, in the network namespace it was made in. The journal goes
    /// only when all of them are undone; otherwise it is rewritten to name exactly what is left, for
    /// <c>via gc</c>. A namespace that cannot be found keeps its rules and routes in the journal:
    /// not finding it does not prove it is gone (one held only by a file descriptor, or bound
    /// outside /run/netns, is invisible), and forgetting them would leave them for good.
    /// </summary>
    public static TeardownResult Run(ActiveRoute route, Action? undone = null)
    {
        using var host = Host.ForNetwork(route.NetworkNamespace);
        if (host is null)
        {
            var inNamespace = route.Changes.Where(c => c.ApplyRequest is not null).ToList();
            var local = Applier.Undo(new Host(), route.Changes.Except(inNamespace).ToList(), undone);
            Record(route, [.. local, .. inNamespace.Select(c => new Leftover(c, "its network namespace was not found"))]);
            return new TeardownResult(local,
                $"its network namespace {route.NetworkNamespace} was not found (not under /run/netns, nor any process's), so its {inNamespace.Count} rules and routes there cannot be removed; " +
                $"if that namespace no longer exists they went with it: then remove {Journal.PathOf(route.Id)}");
        }
        var leftovers = Applier.Undo(host, route.Changes, undone);
        Record(route, leftovers);
        return new TeardownResult(leftovers, null);
    }

    /// <summary>Removes the journal when nothing is left, else rewrites it with only what is left.</summary>
    public static void Record(ActiveRoute route, IReadOnlyList<Leftover> leftovers)
    {
        if (leftovers.Count == 0) Journal.Remove(route.Id);
        else Journal.Write(route with { Changes = route.Changes.Where(c => leftovers.Any(l => l.Change == c)).ToList() });
    }

    /// <summary>
    /// Waits (polling cgroup.events) until the route has no process left: every
    /// <paramref name="poll"/> at first, then less often, up to once a second, for daemons that run for days.
    /// A membership that cannot be read counts as processes remaining: the wait goes on.
    /// </summary>
    public static void WaitUntilEmpty(ActiveRoute route, TimeSpan poll)
    {
        for (var wait = poll; HasMembers(Current(route), mayMount: true); wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, TimeSpan.TicksPerSecond)))
            Thread.Sleep(wait);
    }

    /// <summary>A route held by standing rules as its journal says now ('via rule del' takes them away while a reaper waits); gone: none.</summary>
    private static ActiveRoute Current(ActiveRoute route)
    {
        if (route.Rules.Count == 0) return route;
        try { return Journal.Read(Journal.PathOf(route.Id)); }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException) { return route with { Rules = [] }; }
    }

    /// <summary>
    /// <c>via down</c> (and <c>via apply</c>, for a route that left via.conf): removes the route when no
    /// process is in it; one whose processes remain, or may (their membership cannot be read), is
    /// <see cref="CutOff"/>, never torn down under them. Returns what was done, in words, and what was left.
    /// </summary>
    public static (string Outcome, TeardownResult Result) Down(ActiveRoute route)
    {
        var membership = Occupancy(route, mayMount: true);
        if (!membership.MayHaveMembers)
        {
            var removed = Run(route);
            return (removed.Complete ? "removed" : "removed in part", removed);
        }
        var (_, result) = CutOff(route);
        return (membership.Unknown is { } unknown
            ? $"cut off; {unknown}, so it is kept until 'via gc' can tell that no process is left"
            : $"cut off; {Members(route, mayMount: true).Count} process(es) keep no network until they exit", result);
    }

    /// <summary>
    /// <c>via down</c> on a route that still has processes: takes away its way out (the gateway and
    /// on-link routes, the source rules) but keeps its fwmark rules, the unreachable defaults and
    /// the cgroup, so its programs fail closed instead of falling back to the default route. The
    /// rest goes when they exit (their via, the reaper, or <c>via gc</c>).
    /// </summary>
    public static (ActiveRoute Route, TeardownResult Result) CutOff(ActiveRoute route)
    {
        using var host = Host.ForNetwork(route.NetworkNamespace);
        var ways = route.Changes.Where(c => c is Changes.AddRoute { Route.Type: not Kernel.Netlink.RouteType.Unreachable }
            or Changes.AddRule { Rule.Source: not null }).ToList();
        var leftovers = host is null ? [] : Applier.Undo(host, ways);
        // What was undone leaves the journal; what could not be stays in it.
        // Cut off is no longer standing: the rest goes when its programs exit.
        var down = route with { Down = true, Standing = false, Changes = route.Changes.Where(c => !ways.Contains(c) || leftovers.Any(l => l.Change == c)).ToList() };
        Journal.Write(down);
        return (down, new TeardownResult(leftovers, host is null ? $"its network namespace {route.NetworkNamespace} was not found; its programs' way out could not be removed" : null));
    }
}
