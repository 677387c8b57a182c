using Via.Kernel.Processes;

namespace Via.Mechanisms;

/// <summary>
/// The routes via has made, shared between concurrent invocations. Every method runs under
/// via's lock (/run/via/lock): choosing numbers, joining, leaving and tearing down are serialized,
/// so two invocations never make the same route twice, and a route is never removed while a via
/// that joined it is about to launch into it.
/// </summary>
public static class RouteRegistry
{
    public static FileLock Lock()
    {
        Directory.CreateDirectory(Journal.StateDirectory);
        return FileLock.Acquire(Journal.LockPath);
    }

    public static IReadOnlyList<ActiveRoute> All() => Journal.ReadAll().Select(j => j.Route).ToList();

    /// <summary>A live route with the same key, to share.</summary>
    public static ActiveRoute? FindShared(string key) => All().FirstOrDefault(r => r.Key == key && !r.Down);

    /// <summary>Adds <paramref name="user"/> to the route's users (and forgets users that died).</summary>
    public static ActiveRoute Join(ActiveRoute route, ProcessIdentity user)
    {
        var joined = route with { Users = [.. route.Users.Where(u => u.IsAlive && u != user), user] };
        Journal.Write(joined);
        return joined;
    }

    public enum Outcome { Removed, InUse, ProcessesRemain, Gone }

    /// <summary>
    /// <paramref name="user"/> is done with the route. If no other user lives and no process is left
    /// in it, the route is torn down; if processes remain (daemons) with no via to watch them, the
    /// caller should start a reaper.
    /// </summary>
    public static (Outcome Outcome, List<string> Failures) Leave(string id, ProcessIdentity user, Action? undone = null)
    {
        ActiveRoute route;
        try { route = Journal.Read(Journal.PathOf(id)); }
        catch (FileNotFoundException) { return (Outcome.Gone, []); }
        var others = route.Users.Where(u => u != user && u.IsAlive).ToList();
        if (others.Count > 0)
        {
            Journal.Write(route with { Users = others });
            return (Outcome.InUse, []);
        }
        if (Teardown.HasMembers(route))
        {
            Journal.Write(route with { Users = [] });
            return (Outcome.ProcessesRemain, []);
        }
        return (Outcome.Removed, Teardown.Run(route, undone));
    }

    /// <summary>True if no user lives and no process is in the route: nothing would miss it.</summary>
    public static bool IsAbandoned(ActiveRoute route) => !route.Users.Any(u => u.IsAlive) && !Teardown.HasMembers(route);
}
