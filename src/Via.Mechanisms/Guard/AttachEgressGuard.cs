using Via.Kernel;
using Via.Kernel.Bpf;
using Via.Kernel.Cgroups;
using Via.Mechanisms.Cgroup;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Guard;

/// <summary>
/// Puts the egress guard on a route's cgroup (DESIGN.md point 11): a per-CPU counters map, the
/// egress program that passes only IFACE and loopback (and counts), the ingress program that
/// counts, and the connect6 program that binds link-local connects to IFACE so a scope id naming
/// another interface fails at once. Attached with BPF_PROG_ATTACH, like the mark program: they
/// live as long as the cgroup, so the guard holds after a SIGKILLed via and whatever happens to
/// via's rules and routes. The map has no name on the host of its own: the programs hold it, and
/// it goes with them.
/// </summary>
/// <param name="DeviceIndex">IFACE's index: the one interface (besides loopback) packets may leave by.</param>
/// <param name="Device">IFACE's name, for people.</param>
/// <param name="Fixed">The device is not IFACE but one a mechanism made in the program's own network
/// namespace (<see cref="IMechanism.GuardDevice"/>): the guard stays on its index when IFACE is made again.</param>
public sealed record AttachEgressGuard(string CgroupPath, int DeviceIndex, string Device, bool Fixed = false) : HostChange
{
    /// <summary>
    /// --only: the destinations that must leave by IFACE; a packet to any other may leave by any
    /// interface (the default path). The connect6 program is then not attached: binding a link-local
    /// connect to IFACE would send a destination that is not filtered the wrong way; a filtered one
    /// that names another interface is still dropped by the egress program.
    /// </summary>
    public DestinationFilters? Only { get; init; }

    private static readonly (BpfAttachType Hook, string Name)[] Programs =
    [
        (BpfAttachType.CgroupInetEgress, EgressGuardPrograms.EgressName),
        (BpfAttachType.CgroupInetIngress, EgressGuardPrograms.IngressName),
        (BpfAttachType.CgroupInet6Connect, EgressGuardPrograms.Connect6Name),
    ];

    public override string Command => Only is { } only
        ? $"bpftool cgroup attach {CgroupPath} egress <{EgressGuardPrograms.EgressName}: pass dev {Device} (ifindex {DeviceIndex}) and lo, drop the rest to {only}, pass other destinations, count> multi"
            + $"; bpftool cgroup attach {CgroupPath} ingress <{EgressGuardPrograms.IngressName}: count> multi"
        : $"bpftool cgroup attach {CgroupPath} egress <{EgressGuardPrograms.EgressName}: pass dev {Device} (ifindex {DeviceIndex}) and lo, drop the rest, count> multi"
            + $"; bpftool cgroup attach {CgroupPath} ingress <{EgressGuardPrograms.IngressName}: count> multi"
            + $"; bpftool cgroup attach {CgroupPath} connect6 <{EgressGuardPrograms.Connect6Name}: bind link-local connects to {Device}> multi";

    public static readonly ChangeCodec Codec = new("egress-guard", c => new AttachEgressGuard(JsonFields.Need(c, "cgroup"), c.GetProperty("ifindex").GetInt32(), JsonFields.Need(c, "device"),
        c.TryGetProperty("fixed", out var f) && f.GetBoolean())
    {
        Only = JsonFields.Str(c, "only") is { } only
            ? DestinationFilters.Parse([only], out string? error) ?? throw new System.Text.Json.JsonException($"egress guard's 'only': {error}")
            : null,
    });

    public override string Kind => Codec.Kind;

    public override void Write(System.Text.Json.Utf8JsonWriter w)
    {
        w.WriteString("cgroup", CgroupPath);
        w.WriteNumber("ifindex", DeviceIndex);
        w.WriteString("device", Device);
        if (Fixed) w.WriteBoolean("fixed", true);
        if (Only is not null) w.WriteString("only", Only.ToString());
    }

    public override HostChange? ForDevice(int index) => Fixed ? null : this with { DeviceIndex = index };

    public override string UndoCommand => string.Join("; ", Programs.Select(p => $"bpftool cgroup detach {CgroupPath} {HookName(p.Hook)} name {p.Name}"));

    /// <summary>
    /// Attaches the guard. If the cgroup has one already (IFACE was re-created with a new index
    /// and the route follows it), the new programs are attached first and the old ones detached
    /// after: while both egress programs are attached a packet must pass both, and no interface
    /// but loopback passes both, so the moment between fails closed. The new programs count into
    /// the old guard's map, so the route's counters go on.
    /// </summary>
    public override void Apply(Host host)
    {
        var old = Programs.Select(p => CgroupPrograms.Named(CgroupPath, p.Hook, p.Name)).ToArray();
        using var counters = OpenCounters(old[0]) ?? BpfSyscall.CreateMap(BpfMapType.PerCpuArray, EgressGuardPrograms.CountersSize, 1, EgressGuardPrograms.CountersName);
        int fd = counters.Value;
        try
        {
            CgroupPrograms.Attach(CgroupPath, BpfProgType.CgroupSkb, BpfAttachType.CgroupInetEgress, EgressGuardPrograms.Egress(fd, DeviceIndex, Only), EgressGuardPrograms.EgressName);
            CgroupPrograms.Attach(CgroupPath, BpfProgType.CgroupSkb, BpfAttachType.CgroupInetIngress, EgressGuardPrograms.Ingress(fd), EgressGuardPrograms.IngressName);
            if (Only is null)
                CgroupPrograms.Attach(CgroupPath, BpfProgType.CgroupSockAddr, BpfAttachType.CgroupInet6Connect, EgressGuardPrograms.Connect6(DeviceIndex), EgressGuardPrograms.Connect6Name);
        }
        catch
        {
            // One change, all or nothing: take back the programs this change attached (not the old guard's).
            for (int i = 0; i < Programs.Length; i++)
                CgroupPrograms.DetachIds(CgroupPath, Programs[i].Hook, CgroupPrograms.Named(CgroupPath, Programs[i].Hook, Programs[i].Name).Except(old[i]).ToList());
            throw;
        }
        for (int i = 0; i < Programs.Length; i++) CgroupPrograms.DetachIds(CgroupPath, Programs[i].Hook, old[i]);
    }

    /// <summary>The counters map of an attached egress program of the guard, if any.</summary>
    private static SafeFd? OpenCounters(IReadOnlyList<uint> egressPrograms)
    {
        foreach (uint id in egressPrograms)
        {
            using var program = BpfSyscall.OpenProgram(id);
            if (program is null) continue;
            foreach (uint mapId in BpfSyscall.ProgramMapIds(program))
            {
                var map = BpfSyscall.OpenMap(mapId);
                if (map is not null && BpfSyscall.MapName(map) == EgressGuardPrograms.CountersName) return map;
                map?.Dispose();
            }
        }
        return null;
    }

    public override bool Undo(Host host)
    {
        string path = CgroupPaths.Resolve(CgroupPath);
        bool any = false;
        foreach (var (hook, name) in Programs) any |= CgroupPrograms.DetachNamed(path, hook, name);
        return any;
    }

    private static string HookName(BpfAttachType hook) => hook switch
    {
        BpfAttachType.CgroupInetEgress => "egress",
        BpfAttachType.CgroupInetIngress => "ingress",
        _ => "connect6",
    };
}

/// <summary>What a route's egress guard has counted since the route was made, over all CPUs.</summary>
public sealed record RouteCounters(ulong OutPackets, ulong OutBytes, ulong InPackets, ulong InBytes, ulong RefusedPackets, ulong RefusedBytes)
{
    /// <summary>
    /// Reads the counters of the guard on <paramref name="cgroupPath"/>: the egress program is found
    /// by name among the cgroup's egress programs, its map by the program's map ids. Null when the
    /// cgroup has no guard (gone, or made by a via without one).
    /// </summary>
    public static RouteCounters? Read(string cgroupPath)
    {
        // Read-only (via ls, via top): a cgroup2 mount is never made for it.
        string? path = CgroupPaths.TryResolve(cgroupPath, mayMount: false);
        if (path is null || !Directory.Exists(path)) return null;
        using var cgroup = Cgroup2.OpenDirectory(path);
        foreach (uint id in BpfSyscall.Query(cgroup, BpfAttachType.CgroupInetEgress, path))
        {
            using var program = BpfSyscall.OpenProgram(id);
            if (program is null || BpfSyscall.ProgramName(program) != EgressGuardPrograms.EgressName) continue;
            foreach (uint mapId in BpfSyscall.ProgramMapIds(program))
            {
                using var map = BpfSyscall.OpenMap(mapId);
                if (map is null || BpfSyscall.MapName(map) != EgressGuardPrograms.CountersName) continue;
                return Sum(map, path);
            }
        }
        return null;
    }

    private static RouteCounters Sum(SafeFd map, string path)
    {
        const int slots = (int)EgressGuardPrograms.CountersSize / sizeof(ulong);
        var values = new byte[EgressGuardPrograms.CountersSize * BpfSyscall.PossibleCpus];
        BpfSyscall.LookupPerCpu(map, 0, values, $"counters of {path}");
        var total = new ulong[slots];
        var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(values);
        for (int i = 0; i < words.Length; i++) total[i % slots] += words[i];
        return new RouteCounters(total[0], total[1], total[2], total[3], total[4], total[5]);
    }
}
