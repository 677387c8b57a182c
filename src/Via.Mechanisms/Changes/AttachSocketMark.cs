using Via.Kernel;
using Via.Kernel.Bpf;
using Via.Kernel.Cgroups;
using Via.Mechanisms.Cgroup;

namespace Via.Mechanisms.Changes;

/// <summary>
/// Loads the socket-mark program and attaches it to a cgroup (BPF_CGROUP_INET_SOCK_CREATE).
/// <para>
/// Why BPF_PROG_ATTACH and not a bpf_link: a link dies with via's fd, so a SIGKILLed via would
/// leave the program running unmarked, i.e. out of the default route. An attachment lives as long
/// as the cgroup does: a program that outlives via stays routed (or fails closed once the rules
/// are collected), and the kernel releases the attachment with the cgroup.
/// </para>
/// </summary>
public sealed record AttachSocketMark(string CgroupPath, uint Mark) : HostChange
{
    public override string Command => $"bpftool cgroup attach {CgroupPath} sock_create <{SocketMarkProgram.Name}: mark=0x{Mark:x}> multi";
    public override string UndoCommand => $"bpftool cgroup detach {CgroupPath} sock_create name {SocketMarkProgram.Name}";

    public static readonly ChangeCodec Codec = new("sock-mark", c => new AttachSocketMark(JsonFields.Need(c, "cgroup"), c.GetProperty("mark").GetUInt32()));

    public override string Kind => Codec.Kind;

    public override void Write(System.Text.Json.Utf8JsonWriter w)
    {
        w.WriteString("cgroup", CgroupPath);
        w.WriteNumber("mark", Mark);
    }

    public override void Apply(Host host) =>
        CgroupPrograms.Attach(CgroupPath, BpfProgType.CgroupSock, BpfAttachType.CgroupInetSockCreate, SocketMarkProgram.SetMark(Mark), SocketMarkProgram.Name);

    public override bool Undo(Host host) =>
        CgroupPrograms.DetachNamed(CgroupPaths.Resolve(CgroupPath), BpfAttachType.CgroupInetSockCreate, SocketMarkProgram.Name);
}

/// <summary>via's eBPF programs on a cgroup: attached next to any others (BPF_F_ALLOW_MULTI), found again by name.</summary>
public static class CgroupPrograms
{
    /// <summary>Loads the program and attaches it; the kernel keeps it while it is attached, so the fd is closed at once.</summary>
    public static void Attach(string cgroupPath, BpfProgType type, BpfAttachType hook, IReadOnlyList<Instruction> program, string name)
    {
        using var loaded = BpfSyscall.LoadProgram(type, hook, program, name);
        using var cgroup = Cgroup2.OpenDirectory(cgroupPath);
        BpfSyscall.Attach(cgroup, loaded, hook, BpfSyscall.AllowMulti, cgroupPath);
    }

    /// <summary>
    /// Attaches the program in place of the ones of the same name already there (a guard for
    /// IFACE's new index): the new one first, then the old ones. While both are attached a socket
    /// or packet must pass both, so the moment between fails closed. With none there, this is <see cref="Attach"/>.
    /// </summary>
    public static void Replace(string cgroupPath, BpfProgType type, BpfAttachType hook, IReadOnlyList<Instruction> program, string name)
    {
        var old = Named(cgroupPath, hook, name);
        Attach(cgroupPath, type, hook, program, name);
        DetachIds(cgroupPath, hook, old);
    }

    /// <summary>The ids of the programs of that name attached to the cgroup at that hook.</summary>
    public static List<uint> Named(string cgroupPath, BpfAttachType hook, string name)
    {
        var ids = new List<uint>();
        if (!Directory.Exists(cgroupPath)) return ids;
        using var cgroup = Cgroup2.OpenDirectory(cgroupPath);
        foreach (uint id in BpfSyscall.Query(cgroup, hook, cgroupPath))
        {
            using var program = BpfSyscall.OpenProgram(id);
            if (program is not null && BpfSyscall.ProgramName(program) == name) ids.Add(id);
        }
        return ids;
    }

    /// <summary>Detaches the programs with these ids from the cgroup at that hook (those already gone are skipped).</summary>
    public static void DetachIds(string cgroupPath, BpfAttachType hook, IReadOnlyCollection<uint> ids)
    {
        if (ids.Count == 0 || !Directory.Exists(cgroupPath)) return;
        using var cgroup = Cgroup2.OpenDirectory(cgroupPath);
        foreach (uint id in ids)
        {
            using var program = BpfSyscall.OpenProgram(id);
            if (program is not null) BpfSyscall.Detach(cgroup, program, hook, cgroupPath);
        }
    }

    public static bool DetachNamed(string cgroupPath, BpfAttachType hook, string name)
    {
        var ids = Named(cgroupPath, hook, name);
        DetachIds(cgroupPath, hook, ids);
        return ids.Count > 0;
    }
}
