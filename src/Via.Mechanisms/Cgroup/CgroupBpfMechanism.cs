using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Cgroup;

/// <summary>
/// cgroup v2 + an eBPF BPF_CGROUP_INET_SOCK_CREATE program on the route's cgroup that sets the
/// socket mark. The program starts in the cgroup, so no socket is ever created untagged; children,
/// threads and daemonized descendants inherit the cgroup; static binaries are covered because the
/// kernel, not libc, does the tagging. A setsockopt program keeps root from changing the mark.
/// </summary>
public sealed class CgroupBpfMechanism : IMechanism
{
    public string Name => "cgroup";

    public string Summary => "an eBPF program on the route's cgroup marks each socket as the kernel creates it";

    public bool TagsAtCreation => true;

    public MechanismProbe Probe(HostView host)
    {
        if (host.Cgroup2Mounts.Count == 0 && !Cgroup2Known())
            return new MechanismProbe(false, "this kernel has no cgroup2 filesystem");
        // Inside a container bpf() is often refused (a seccomp profile, or root of a user namespace
        // only); there a test load decides, so that auto passes on to a method that works. Elsewhere
        // it is not asked: the launch would pay a program load for nothing.
        if (Guard.EgressGuardSupport.MayBeConfined() && Guard.EgressGuardSupport.Refused() is { } refused)
            return new MechanismProbe(false, $"this host refuses cgroup eBPF programs ({refused})");
        return new MechanismProbe(true, host.Cgroup2Mounts.Count > 0
            ? $"cgroup2 at {RouteCgroups.Root(host)}; eBPF sock_create and setsockopt hooks on the route's cgroup"
            : $"cgroup2 not mounted here; via mounts it at {RouteCgroups.PrivateMount}");
    }

    private static bool Cgroup2Known()
    {
        try { return File.ReadAllText("/proc/filesystems").Contains("cgroup2", StringComparison.Ordinal); }
        catch (IOException) { return false; }
    }

    /// <summary>Loads its programs and the egress guard's (through this kernel's verifier); attaches nothing, creates nothing.</summary>
    public string? Verify(HostView host) => CgroupProbe.Check(cgroup2Root: null) is { } why ? why + " (needs CONFIG_CGROUP_BPF)" : null;

    public IReadOnlyList<HostChange> Tag(TagRequest request) =>
    [
        new AttachSocketMark(request.Cgroup, request.Mark),
        new AttachSetsockoptGuard(request.Cgroup, request.DeviceIndex),
    ];

    public LaunchAdditions Launch(TagRequest request) => LaunchAdditions.None;

    public IReadOnlyList<ChangeCodec> ChangeKinds => [AttachSocketMark.Codec, AttachSetsockoptGuard.Codec];
}
