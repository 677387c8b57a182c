using Via.Kernel.Processes;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms;

/// <summary>What a mechanism needs to tag one route's programs.</summary>
/// <param name="RouteId">Unique name of this route instance (also its journal and cgroup name).</param>
/// <param name="Mark">The socket mark the route's rules match.</param>
/// <param name="Host">The host as planning saw it.</param>
/// <param name="DeviceIndex">The index of the route's interface (IFACE).</param>
public sealed record TagRequest(string RouteId, uint Mark, HostView Host, int DeviceIndex);

/// <summary>
/// How to place the program before execve, as root, before dropping privileges. One description,
/// two executors: the clone3 child (Spawn) and the launcher stage (via __launch) both carry out all of it.
/// </summary>
/// <param name="Cgroup">A cgroup directory the program starts in.</param>
/// <param name="Environment">Variables to set for the program (e.g. LD_PRELOAD for the preload mechanism).</param>
/// <param name="Mounts">Bind mounts made in a mount namespace of the program's own (e.g. its private
/// /etc/resolv.conf, see --dns); none means the program shares via's mount namespace.</param>
public sealed record LaunchSpec(string? Cgroup, IReadOnlyDictionary<string, string> Environment, IReadOnlyList<BindMount>? Mounts = null)
{
    public static readonly IReadOnlyDictionary<string, string> NoEnvironment = new Dictionary<string, string>();

    public IReadOnlyList<BindMount> Mounts { get; init; } = Mounts ?? [];
}

/// <summary>
/// How the sockets of the selected processes get tagged with a route's mark. Mechanisms are pure
/// planners: they return the host changes to apply and how to launch a program; the
/// <see cref="Applier"/> applies them. The cgroup+eBPF mechanism is the first; seccomp, preload,
/// netns, nft and netcls fit the same seam.
/// </summary>
public interface IMechanism
{
    /// <summary>Name used on the command line and in the journal.</summary>
    string Name { get; }

    /// <summary>Whether the mechanism tags sockets when they are created, so the kernel picks the route's
    /// source address itself; if not, the plan must add SNAT (DESIGN.md, point 1).</summary>
    bool TagsAtCreation { get; }

    /// <summary>The changes that make every socket of the program (and its descendants) carry the mark.</summary>
    IReadOnlyList<HostChange> Tag(TagRequest request);

    /// <summary>How to launch a program so that it is tagged from its first instruction.</summary>
    LaunchSpec Launch(TagRequest request);

    /// <summary>Where to watch for the route's remaining processes (teardown waits until it is empty).</summary>
    string? Membership(TagRequest request);
}
