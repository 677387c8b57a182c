using System.Diagnostics;
using System.Globalization;
using Via.Kernel.Processes;

namespace Via.Mechanisms;

/// <summary>
/// The routes via has made, shared between concurrent invocations. Every method that changes
/// something runs under via's lock (/run/via/lock): choosing numbers, joining, leaving and tearing
/// down are serialized, so two invocations never make the same route twice, and a route is never
/// removed while a via that joined it is about to launch into it. Read-only commands take no lock
/// (taking it would mean creating it).
/// </summary>
public static class RouteRegistry
{
    /// <summary>How long a via waits for the lock before giving up; VIA_LOCK_TIMEOUT (seconds) overrides it (tests).</summary>
    public static TimeSpan LockTimeout =>
        double.TryParse(Environment.GetEnvironmentVariable("VIA_LOCK_TIMEOUT"), NumberStyles.Float, CultureInfo.InvariantCulture, out double s) && s > 0
            ? TimeSpan.FromSeconds(s) : TimeSpan.FromSeconds(30);

    /// <summary>After this long, <see cref="Lock"/> says once whom it waits for.</summary>
    private static readonly TimeSpan QuietWait = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Takes via's lock, writing this process into it ("PID via ARGS") so that a via waiting for it
    /// can say whom it waits for. Tells <paramref name="waiting"/> once, after a second, who holds
    /// it; gives up after <see cref="LockTimeout"/> with a <see cref="TimeoutException"/> naming the holder,
    /// or when <paramref name="cancel"/> fires (a route's watcher, stopped because its program ended).
    /// </summary>
    public static FileLock Lock(Action<string>? waiting = null, CancellationToken cancel = default)
    {
        try { Directory.CreateDirectory(Journal.StateDirectory); }
        catch (IOException e) { throw new IOException($"cannot make via's state directory {Journal.StateDirectory}: {e.Message}", e); }
        var clock = Stopwatch.StartNew();
        var timeout = LockTimeout;
        bool told = false;
        for (int pause = 2; ; pause = Math.Min(pause * 2, 50))
        {
            if (FileLock.TryAcquire(Journal.LockPath) is { } acquired)
            {
                acquired.WriteHolder(Self());
                return acquired;
            }
            if (!told && clock.Elapsed >= QuietWait)
            {
                waiting?.Invoke($"waiting for the lock held by {Holder()}");
                told = true;
            }
            cancel.ThrowIfCancellationRequested();
            if (clock.Elapsed >= timeout)
                throw new TimeoutException($"gave up after {timeout.TotalSeconds:0.#} s waiting for via's lock {Journal.LockPath}, held by {Holder()}; if that via is stuck, stop it, then run 'via gc'");
            Thread.Sleep(pause);
        }
    }

    /// <summary>"pid N (via run --dev eth1 -- curl ...)", from the lock file.</summary>
    private static string Holder()
    {
        string? text = FileLock.ReadHolder(Journal.LockPath);
        if (text is null) return "another process";
        int space = text.IndexOf(' ', StringComparison.Ordinal);
        return space < 0 ? $"pid {text}" : $"pid {text[..space]} ({text[(space + 1)..]})";
    }

    private static string Self()
    {
        string command = "via " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1));
        return $"{Environment.ProcessId} {(command.Length > 120 ? command[..117] + "..." : command)}";
    }

    public static IReadOnlyList<ActiveRoute> All() => Journal.ReadAll().Select(j => j.Route).ToList();

    /// <summary>A live route with the same key, to share.</summary>
    /// <remarks>
    /// Never an abandoned route (no live user, no process): its objects may be gone, and its key may
    /// not even mean this namespace any more. A network namespace is named by its inode, and the
    /// kernel gives a freed namespace's inode number to the next one made: a journal kept for a
    /// namespace that is gone (fail closed) would otherwise be joined by a via in a new namespace
    /// that happens to get the same number, and the program would start on a route that is not there.
    /// </remarks>
    public static ActiveRoute? FindShared(string key) => All().FirstOrDefault(r => r.Key == key && !r.Down && !IsAbandoned(r));

    /// <summary>Adds <paramref name="user"/> to the route's users (and forgets users that died).</summary>
    public static ActiveRoute Join(ActiveRoute route, ProcessIdentity user)
    {
        var joined = route with { Users = [.. route.Users.Where(u => u.IsAlive && u != user), user] };
        Journal.Write(joined);
        return joined;
    }

    /// <param name="Standing">The route is kept up without a program (<c>via up</c>, <c>via apply</c>): it stays until <c>via down</c>.</param>
    public enum Outcome { Removed, InUse, ProcessesRemain, Gone, Standing }

    /// <summary>
    /// <paramref name="user"/> is done with the route. If no other user lives and no process is left
    /// in it, the route is torn down; if processes remain (daemons) with no via to watch them, the
    /// caller should start a reaper. <paramref name="remembered"/> is the route as the caller knows
    /// it: used when via's state directory was removed under the live route (a wiped /run), so that
    /// what this via made is still undone (and what is left recorded again) rather than forgotten.
    /// </summary>
    public static (Outcome Outcome, List<string> Problems) Leave(string id, ProcessIdentity user, Action? undone = null, ActiveRoute? remembered = null)
    {
        var notes = new List<string>();
        ActiveRoute route;
        try
        {
            route = Journal.Read(Journal.PathOf(id));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // A journal is only ever removed with its whole route: the file alone missing means
            // another via, 'via down' or 'via gc' removed the route. The directory missing means
            // the state was wiped.
            if (remembered is null || Directory.Exists(Journal.RoutesDirectory)) return (Outcome.Gone, []);
            route = remembered;
            notes.Add($"via's state directory {Journal.RoutesDirectory} was removed while route {id} was in use; removing the route from what this via remembers");
        }
        var others = route.Users.Where(u => u != user && u.IsAlive).ToList();
        if (others.Count > 0)
        {
            Journal.Write(route with { Users = others });
            return (Outcome.InUse, notes);
        }
        if (route.Standing && StandingHolds(route))
        {
            Journal.Write(route with { Users = [] });
            return (Outcome.Standing, notes);
        }
        if (Teardown.HasMembers(route, mayMount: true))
        {
            Journal.Write(route with { Users = [] });
            return (Outcome.ProcessesRemain, notes);
        }
        return (Outcome.Removed, [.. notes, .. Teardown.Run(route, undone).Problems(id)]);
    }

    /// <summary>True if no user lives, no process is (or may be) in the route, and it is not a standing route that still holds: nothing would miss it.</summary>
    public static bool IsAbandoned(ActiveRoute route, bool mayMount = false) =>
        !route.Users.Any(u => u.IsAlive) && !Teardown.HasMembers(route, mayMount) && !(route.Standing && StandingHolds(route));

    /// <summary>
    /// Whether a standing route (<see cref="ActiveRoute.Standing"/>) is still there to keep: its network
    /// namespace is found and has the route's fwmark rule. The rule, not the namespace alone: a
    /// namespace is named by its inode, which the kernel gives to the next namespace made once it is
    /// freed (see <see cref="FindShared"/>), so a standing route whose namespace is gone could otherwise
    /// be kept (and joined) in a new one that holds none of it. A standing route whose rule another
    /// program deleted is then collected by <c>via gc</c>, and made again by <c>via up</c> or <c>via apply</c>.
    /// </summary>
    public static bool StandingHolds(ActiveRoute route)
    {
        if (route.Changes.OfType<Changes.AddRule>().Select(c => c.Rule).FirstOrDefault(r => r.Mark is not null) is not { } want) return false;
        try
        {
            using var host = Host.ForNetwork(route.NetworkNamespace);
            return host is not null && host.Rtnl.Rules(want.Family).Any(k =>
                k.Priority == want.Priority && k.Table == want.Table && k.Mark == want.Mark && k.MarkMask == want.MarkMask && k.Protocol == want.Protocol);
        }
        catch (Exception e) when (e is Kernel.KernelException or IOException or UnauthorizedAccessException)
        {
            // Cannot look: keep it (taking a live standing route for gone would remove it).
            return true;
        }
    }
}
