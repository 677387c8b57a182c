using Via.Mechanisms.Changes;

namespace Via.Mechanisms;

/// <summary>
/// Every route has a cgroup of its own, whatever tags its sockets: its programs start in it, so its
/// membership ("the route has programs") is "the cgroup is populated", and the egress guard sits on
/// it. They live in via's subtree of the cgroup2 hierarchy: <c>CGROUP2/via/ROUTE</c>.
/// </summary>
public static class RouteCgroups
{
    /// <summary>Where via mounts cgroup2 when none is visible: in its state directory (/run/via/cgroup2).</summary>
    public static string PrivateMount => Path.Combine(Journal.StateDirectory, "cgroup2");

    /// <summary>
    /// via's subtree in the cgroup2 hierarchy: everything below it is via's. VIA_CGROUP_SUBTREE
    /// names another one (tests, with a VIA_STATE_DIR of their own: see <see cref="Journal.OwnsCgroupSubtree"/>).
    /// </summary>
    public static string Subtree => OwnSubtree ?? "via";

    /// <summary>The subtree VIA_CGROUP_SUBTREE names, or null; one directory name, never a path.</summary>
    public static string? OwnSubtree =>
        Environment.GetEnvironmentVariable("VIA_CGROUP_SUBTREE") is not { Length: > 0 } name ? null
        : name.Contains('/') || name.StartsWith('.') ? throw new InvalidOperationException($"VIA_CGROUP_SUBTREE '{name}' must be one directory name (e.g. via-test), not a path")
        : name;

    /// <summary>The cgroup2 root to use: the unified mount, the hybrid one, or via's private mount.</summary>
    public static string Root(HostView host) => Cgroup.CgroupPaths.Preferred(host.Cgroup2Mounts) ?? PrivateMount;

    /// <summary>The route's cgroup.</summary>
    public static string PathOf(HostView host, string routeId) => Path.Combine(Root(host), Subtree, routeId);

    /// <summary>
    /// The route's cgroup as /proc/PID/cgroup names it (its path below the cgroup2 hierarchy's
    /// root, e.g. /via/t22000): the directory with the cgroup2 mount it lies under taken off. The
    /// mounts via may use: the host's (unified, hybrid) and its private one (inside ip netns exec).
    /// </summary>
    public static string BelowRoot(HostView host, string cgroup)
    {
        string full = cgroup.TrimEnd('/');
        string? mount = host.Cgroup2Mounts.Append(PrivateMount)
            .Select(m => m.TrimEnd('/'))
            .Where(m => full.StartsWith(m + "/", StringComparison.Ordinal))
            .OrderByDescending(m => m.Length)
            .FirstOrDefault();
        return mount is null ? "/" + Subtree + "/" + Path.GetFileName(full) : full[mount.Length..];
    }

    /// <summary>What makes it: a cgroup2 mount if none is visible, then the cgroup.</summary>
    public static IEnumerable<HostChange> Create(HostView host, string cgroup)
    {
        if (host.Cgroup2Mounts.Count == 0) yield return new MountCgroup2(PrivateMount);
        yield return new CreateCgroup(cgroup);
    }
}
