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

    public static bool DetachNamed(string cgroupPath, BpfAttachType hook, string name)
    {
        if (!Directory.Exists(cgroupPath)) return false;
        using var cgroup = Cgroup2.OpenDirectory(cgroupPath);
        bool any = false;
        foreach (uint id in BpfSyscall.Query(cgroup, hook, cgroupPath))
        {
            using var program = BpfSyscall.OpenProgram(id);
            if (program is null || BpfSyscall.ProgramName(program) != name) continue;
            BpfSyscall.Detach(cgroup, program, hook, cgroupPath);
            any = true;
        }
        return any;
    }
}
