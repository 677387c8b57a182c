using Microsoft.Win32.SafeHandles;
using Via.Kernel.Processes;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms;

/// <summary>What a mechanism needs to tag one route's programs.</summary>
/// <param name="RouteId">Unique name of this route instance (also its journal and cgroup name).</param>
/// <param name="Mark">The socket mark the route's rules match.</param>
/// <param name="Host">The host as planning saw it.</param>
/// <param name="DeviceIndex">The index of the route's interface (IFACE).</param>
/// <param name="Cgroup">The route's membership cgroup, made by the engine for every mechanism: its
/// programs start in it, the egress guard sits on it, and the route lives while it is populated.</param>
/// <param name="Table">The route's table (0 where a route is joined, not made): a mechanism whose packets
/// are forwarded (netns) selects it with rules of its own.</param>
/// <param name="Priority">The priority of the route's rules (0 likewise).</param>
/// <param name="Device">IFACE's name.</param>
/// <param name="Source4">The route's IPv4 source address (IFACE's), if it routes IPv4: what a mechanism that
/// marks after routing must SNAT to (DESIGN.md point 1).</param>
/// <param name="Source6">Likewise for IPv6.</param>
/// <param name="Owner">Whose packets the route carries: its cgroup (the default), or a uid or gid, which
/// only a mechanism that <see cref="IMechanism.MatchesOwners"/> is given.</param>
/// <param name="Direct">The program's own addresses on IFACE's network (<c>--ip</c>), planned (prefixes and gateways
/// decided); only for a mechanism that <see cref="IMechanism.AttachesDirectly"/>. Null: none asked.</param>
public sealed record TagRequest(string RouteId, uint Mark, HostView Host, int DeviceIndex, string Cgroup, uint Table = 0, uint Priority = 0,
    string Device = "", System.Net.IPAddress? Source4 = null, System.Net.IPAddress? Source6 = null, RouteOwner Owner = default, DirectAttachment? Direct = null);

/// <summary>Whether a mechanism can work on this host, and what it found (one line, for <c>doctor</c> and <c>--verbose</c>).</summary>
public sealed record MechanismProbe(bool Usable, string Detail);

/// <summary>The program file to run, as a mechanism needs to judge it.</summary>
/// <param name="Static">An ELF executable without an interpreter (no dynamic loader: LD_PRELOAD does nothing).</param>
/// <param name="SetId">Set-user-ID or set-group-ID: the loader runs it in secure mode.</param>
public sealed record ProgramImage(string Path, bool Static, bool SetId);

/// <summary>What a mechanism adds to every launch on its route.</summary>
/// <param name="Environment">Variables set for the program (the preload mechanism's LD_PRELOAD).</param>
/// <param name="SeccompListener">Install via's seccomp user-notification filter in the program before
/// execve and hand its listener to <see cref="IMechanism.Started"/>.</param>
/// <param name="JoinCgroups">cgroup v1 directories the program joins before execve, besides the route's
/// cgroup v2 (the netcls mechanism's net_cls cgroup): in the clone3 child and in the launcher stage alike.</param>
/// <param name="NetworkNamespace">A network namespace file the program enters before anything else (the netns mechanism's).</param>
public sealed record LaunchAdditions(IReadOnlyDictionary<string, string> Environment, bool SeccompListener = false, string? NetworkNamespace = null,
    IReadOnlyList<string>? JoinCgroups = null)
{
    public static readonly LaunchAdditions None = new(new Dictionary<string, string>());
}

/// <summary>A program the engine has started (it may not have reached execve yet).</summary>
public sealed record LaunchedProgram(int Pid, SafeFileHandle? SeccompListener, Credentials? User);

/// <summary>
/// One way of making a route's programs' sockets carry its mark. A mechanism plans (<see cref="Tag"/>,
/// <see cref="Launch"/>), the engine applies its host changes all or nothing, records them in the
/// journal (each change kind reads itself back through <see cref="ChangeKinds"/>), launches the program
/// in the route's cgroup with the mechanism's additions, and calls <see cref="Started"/>. The
/// membership cgroup, the egress guard, the table and the rules are the engine's, for every mechanism.
/// Mechanisms are listed by name in <see cref="Registry"/>: adding one is a folder and a line there.
/// </summary>
public interface IMechanism
{
    /// <summary>Name on the command line (<c>--method NAME</c>) and in the journal.</summary>
    string Name { get; }

    /// <summary>How it tags, in one line (help, doctor).</summary>
    string Summary { get; }

    /// <summary>Whether the mechanism tags sockets when they are created, so the kernel picks the route's
    /// source address itself; if not, the plan must add SNAT (DESIGN.md, point 1).</summary>
    bool TagsAtCreation { get; }

    /// <summary>Whether its tagging needs cgroup eBPF. One that does not (seccomp) still gets the egress
    /// guard where the host allows cgroup eBPF, and goes without it, said in one line, where the host
    /// refuses it (inside many containers).</summary>
    bool NeedsCgroupBpf => true;

    /// <summary>Whether it can carry a route whose owner is a uid or gid (<see cref="RouteOwner"/>), matching
    /// the packets of every socket of it, not only those of the route's cgroup. False: the planner refuses such a route.</summary>
    bool MatchesOwners => false;

    /// <summary>Whether it can give the program addresses of its own on IFACE's network (<c>--ip</c>,
    /// <see cref="TagRequest.Direct"/>): only a mechanism that puts the program in a network namespace of its own.</summary>
    bool AttachesDirectly => false;

    /// <summary>Whether the program's packets are routed by the host's policy rules on their mark, so that
    /// <c>--only</c>'s rules can send some destinations through the route and leave the rest on the
    /// default path. False for a mechanism whose every packet goes through the route by construction
    /// (netns: the namespace's only way out is its link to the host).</summary>
    bool FiltersDestinations => true;

    /// <summary>Whether it can work here: cheap (files, kernel features), changes nothing. <c>auto</c> takes the first usable one.</summary>
    MechanismProbe Probe(HostView host);

    /// <summary>The thorough check <c>via doctor</c> runs (e.g. loading eBPF programs); null when all works, else why not.</summary>
    string? Verify(HostView host) => null;

    /// <summary>Why it cannot serve this program (null: it can). The engine then refuses in one line and runs nothing.</summary>
    string? Refuse(ProgramImage program) => null;

    /// <summary>
    /// The interface the egress guard lets the program's packets leave by, as the program's network
    /// namespace names it. Null (the default): IFACE itself, followed by its index when it is made
    /// again. A mechanism that puts the program in a namespace of its own names that namespace's
    /// link (IFACE does not exist there); such a guard stays on its index.
    /// </summary>
    (int Index, string Name)? GuardDevice(TagRequest request) => null;

    /// <summary>Its own host changes, beyond the engine's (cgroup, guard, routes, rules).</summary>
    IReadOnlyList<HostChange> Tag(TagRequest request);

    /// <summary>What it adds to each launch on the route.</summary>
    LaunchAdditions Launch(TagRequest request);

    /// <summary>After the spawn, before the engine waits: e.g. hand the seccomp listener to a supervisor.
    /// Throwing fails the launch: the engine kills the program.</summary>
    void Started(TagRequest request, LaunchedProgram program) { }

    /// <summary>After the program has exited and been reaped, before the route is left: e.g. let the
    /// seccomp supervisor, which exits when its filter has no task left, leave the route's cgroup, so
    /// that a route with no daemons is removed at once rather than by a reaper.</summary>
    void Finished(TagRequest request, LaunchedProgram program) { }

    /// <summary>For <c>via gc</c>: removes what of this mechanism is on the host that no journal in
    /// <paramref name="known"/> accounts for (beyond the route cgroups, routes and rules the engine sweeps); a dry run only reports.</summary>
    IEnumerable<Collector.Removal> Sweep(IReadOnlyList<ActiveRoute> known, bool dryRun) => [];

    /// <summary>The journal codecs of its own <see cref="HostChange"/> kinds.</summary>
    IReadOnlyList<ChangeCodec> ChangeKinds => [];
}
