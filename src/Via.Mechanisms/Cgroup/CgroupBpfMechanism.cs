using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Cgroup;

/// <summary>
/// cgroup v2 + an eBPF BPF_CGROUP_INET_SOCK_CREATE program that sets the socket mark. The program
/// is moved into the cgroup before execve, so no socket is ever created untagged; children,
/// threads and daemonized descendants inherit the cgroup; static binaries are covered because the
/// kernel, not libc, does the tagging.
/// </summary>
public sealed class CgroupBpfMechanism : IMechanism
{
    /// <summary>Where via mounts cgroup2 when none is visible.</summary>
    public const string PrivateMount = "/run/via/cgroup2";

    /// <summary>via's subtree in the cgroup2 hierarchy: everything below it is via's.</summary>
    public const string Subtree = "via";

    public string Name => "cgroup";

    public bool TagsAtCreation => true;

    /// <summary>The cgroup2 root to use: the unified mount, the hybrid one, or via's private mount.</summary>
    public static string Root(HostView host) => CgroupPaths.Preferred(host.Cgroup2Mounts) ?? PrivateMount;

    public static string CgroupOf(TagRequest r) => Path.Combine(Root(r.Host), Subtree, r.RouteId);

    public IReadOnlyList<HostChange> Tag(TagRequest request)
    {
        var changes = new List<HostChange>();
        if (request.Host.Cgroup2Mounts.Count == 0) changes.Add(new MountCgroup2(PrivateMount));
        string cgroup = CgroupOf(request);
        changes.Add(new CreateCgroup(cgroup));
        changes.Add(new AttachSocketMark(cgroup, request.Mark));
        changes.Add(new AttachSetsockoptGuard(cgroup, request.DeviceIndex));
        return changes;
    }

    public LaunchSpec Launch(TagRequest request) => new(CgroupOf(request), LaunchSpec.NoEnvironment);

    public string? Membership(TagRequest request) => CgroupOf(request);
}
