using Via.Mechanisms.Changes;

namespace Via.Mechanisms;

/// <summary>
/// Every route has a cgroup of its own, whatever tags its sockets: its programs start in it, so its
/// membership ("the route has programs") is "the cgroup is populated", and the egress guard sits on
/// it. They live in via's subtree of the cgroup2 hierarchy: <c>CGROUP2/via/ROUTE</c>.
/// </summary>
public static class RouteCgroups
{
    /// <summary>Where via mounts cgroup2 when none is visible.</summary>
    public const string PrivateMount = "/run/via/cgroup2";

    /// <summary>via's subtree in the cgroup2 hierarchy: everything below it is via's.</summary>
    public const string Subtree = "via";

    /// <summary>The cgroup2 root to use: the unified mount, the hybrid one, or via's private mount.</summary>
    public static string Root(HostView host) => Cgroup.CgroupPaths.Preferred(host.Cgroup2Mounts) ?? PrivateMount;

    /// <summary>The route's cgroup.</summary>
    public static string PathOf(HostView host, string routeId) => Path.Combine(Root(host), Subtree, routeId);

    /// <summary>What makes it: a cgroup2 mount if none is visible, then the cgroup.</summary>
    public static IEnumerable<HostChange> Create(HostView host, string cgroup)
    {
        if (host.Cgroup2Mounts.Count == 0) yield return new MountCgroup2(PrivateMount);
        yield return new CreateCgroup(cgroup);
    }
}
