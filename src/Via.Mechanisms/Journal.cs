using Via.Kernel.Processes;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms;

/// <summary>
/// One route as via made it, written to /run/via/routes/ID.json before the first change is
/// applied (every undo tolerates a change that never happened), and removed after the last undo.
/// Concurrent invocations asking for the same route (same <see cref="Key"/>) share it; the route
/// stays while any of its <see cref="Users"/> (via processes) lives or its cgroup has a process.
/// The reaper, <c>via down</c> and <c>via gc</c> undo from it.
/// </summary>
/// <param name="NetworkNamespace">The network namespace its rules and routes live in ("net:[INODE]").</param>
/// <param name="Down">Set by <c>via down</c>: the route's way out is gone and its programs are cut off until they exit.</param>
public sealed record ActiveRoute(
    string Id,
    string Key,
    string NetworkNamespace,
    DateTimeOffset Created,
    string Device,
    string? Gateway,
    uint Mark,
    uint Table,
    string Mechanism,
    string? Cgroup,
    List<ProcessIdentity> Users,
    bool Down,
    List<HostChange> Changes)
{
    /// <summary>What the user asked for beyond the interface: <c>--gateway</c> and <c>--src</c> (null: found on the host).
    /// The route follows IFACE by name with these, so a re-made route is the one that was asked for.</summary>
    public string? RequestedGateway { get; init; }

    public string? RequestedSource { get; init; }

    /// <summary><c>--table</c>, when the user chose the table (part of the route's <see cref="Key"/>).</summary>
    public uint? RequestedTable { get; init; }

    /// <summary>Whose packets the route carries (part of its <see cref="Key"/>): its cgroup, or a uid or gid.</summary>
    public RouteOwner Owner { get; init; }

    /// <summary><c>--only</c>: the destinations the route carries (part of its <see cref="Key"/>); null: all.
    /// Its rules are re-made with these when the route follows IFACE.</summary>
    public DestinationFilters? Only { get; init; }

    /// <summary>Whether the route has its way out now (<see cref="RouteHealth"/>), as its watcher last saw it.</summary>
    public string Health { get; init; } = RouteHealth.Up;

    /// <summary>Why it waits (IFACE gone, down, without an address or gateway); null when up.</summary>
    public string? Waiting { get; init; }

    /// <summary>What every launch on the route gets from its mechanism (environment, seccomp filter), as
    /// planned when the route was made: a via that joins the route launches with the same.</summary>
    public LaunchAdditions Launch { get; init; } = LaunchAdditions.None;

    /// <summary>How many times a watcher put back what another program or the kernel had removed.</summary>
    public int Repairs { get; init; }

    /// <summary>Processes that were already running when <c>via attach --pid</c> moved them into the
    /// route's cgroup, with the cgroup each came from: <c>via detach</c> puts them back, and what is
    /// left after a crash says whose they were.</summary>
    public List<AttachedProcess> Attached { get; init; } = [];

    /// <summary>Cgroups that are not via's (a systemd service's) whose processes <c>via attach --cgroup/--unit</c>
    /// routes where they are, by the route's socket programs attached to them. The route lives while one exists.</summary>
    public List<AttachedCgroup> AttachedCgroups { get; init; } = [];

    /// <summary>The via.conf route it was made from (<c>via up NAME</c>, <c>via run --route NAME</c>, <c>via apply</c>); null for one made from options.</summary>
    public string? Name { get; init; }

    /// <summary>
    /// Kept up without a program (<c>via up</c>, <c>via apply</c>): never abandoned while its network
    /// namespace exists; only <c>via down</c> or <c>via apply</c> (its route gone from via.conf) removes it.
    /// </summary>
    public bool Standing { get; init; }

    /// <summary>What a named route was made from (<c>NamedRoute.Definition</c>): <c>via apply</c> re-makes it when the file's differs.</summary>
    public string? Definition { get; init; }

    /// <summary>Standing rules on the route (<c>via rule add</c>, via.conf): every socket they pick out goes
    /// through it, whoever started the process. The route lives while it has one.</summary>
    public List<Rules.StandingRule> Rules { get; init; } = [];
}

/// <summary>A cgroup of someone else's that <c>via attach</c> routes as a whole; via never creates nor removes it.</summary>
/// <param name="Path">Its path below the cgroup2 hierarchy's root ("/system.slice/x.service"): the same from every mount namespace.</param>
/// <param name="Unit">The systemd unit it was asked for by (--unit), or null.</param>
public sealed record AttachedCgroup(string Path, string? Unit);

/// <summary>A running process moved into a route's cgroup by <c>via attach</c>.</summary>
/// <param name="From">Its cgroup v2 path before, relative to the hierarchy's root ("/user.slice/..."), as /proc/PID/cgroup says.</param>
public sealed record AttachedProcess(ProcessIdentity Process, string From);

/// <summary>The states of a route's way out, as <c>via ls</c> shows them.</summary>
public static class RouteHealth
{
    /// <summary>Its table, rules and guard are all there for IFACE as it is now.</summary>
    public const string Up = "up";

    /// <summary>IFACE is gone, down, or has no address or gateway: the kill switch and fwmark rules hold (fail closed) until it is back.</summary>
    public const string Waiting = "waiting";
}

public static class Journal
{
    /// <summary>
    /// via's state directory; VIA_STATE_DIR overrides it (tests), usually with a cgroup subtree of
    /// its own (VIA_CGROUP_SUBTREE, <see cref="RouteCgroups.Subtree"/>).
    /// </summary>
    public static string StateDirectory => Environment.GetEnvironmentVariable("VIA_STATE_DIR") is { Length: > 0 } d ? d : DefaultStateDirectory;

    public const string DefaultStateDirectory = "/run/via";

    /// <summary>
    /// True when this state directory's journals account for every cgroup in via's subtree: the
    /// default state directory, or any with a subtree of its own (VIA_CGROUP_SUBTREE), so that
    /// <c>via gc</c> there sweeps that subtree. Another state directory alone (VIA_STATE_DIR) shares
    /// the "via" subtree with /run/via and with other such directories, so cgroups it does not know
    /// may be theirs.
    /// </summary>
    public static bool OwnsCgroupSubtree => StateDirectory == DefaultStateDirectory || RouteCgroups.OwnSubtree is not null;

    public static string RoutesDirectory => Path.Combine(StateDirectory, "routes");

    public static string LockPath => Path.Combine(StateDirectory, "lock");

    public static string PathOf(string id) => Path.Combine(RoutesDirectory, id + ".json");

    public static void Write(ActiveRoute route)
    {
        Directory.CreateDirectory(RoutesDirectory);
        string path = PathOf(route.Id), temp = path + ".tmp";
        File.WriteAllBytes(temp, JournalCodec.Encode(route));
        File.Move(temp, path, overwrite: true);
    }

    public static ActiveRoute Read(string path) => JournalCodec.Decode(File.ReadAllBytes(path), path);

    public static IEnumerable<(string Path, ActiveRoute Route)> ReadAll()
    {
        if (!Directory.Exists(RoutesDirectory)) yield break;
        foreach (var path in Directory.EnumerateFiles(RoutesDirectory, "*.json"))
        {
            ActiveRoute? route = null;
            try { route = Read(path); } catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException) { }
            if (route is not null) yield return (path, route);
        }
    }

    /// <summary>Removes the route's journal; nothing to do when it (or via's whole state directory) is gone.</summary>
    public static void Remove(string id)
    {
        try { File.Delete(PathOf(id)); }
        catch (DirectoryNotFoundException) { }
    }

    /// <summary>
    /// Journal files that cannot be used, with why: <paramref name="Damaged"/> when read but not a
    /// journal (or half-written by a crash), false when they could not be read at all (an I/O
    /// error: the journal may be fine, and must not be taken for garbage).
    /// </summary>
    public static IEnumerable<(string Path, string Why, bool Damaged)> Unreadable()
    {
        if (!Directory.Exists(RoutesDirectory)) yield break;
        foreach (var path in Directory.EnumerateFiles(RoutesDirectory))
        {
            if (!path.EndsWith(".json", StringComparison.Ordinal))
            {
                yield return (path, "left over from an interrupted write", true);
                continue;
            }
            (string, bool)? problem = null;
            try { Read(path); }
            catch (InvalidDataException e) { problem = (e.Message, true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { problem = ($"cannot read it: {e.Message}", false); }
            if (problem is var (why, damaged)) yield return (path, why, damaged);
        }
    }
}
