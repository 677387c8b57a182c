using Via.Kernel;
using Via.Kernel.Bpf;
using Via.Kernel.Processes;
using static Via.Kernel.Bpf.Register;

namespace Via.Mechanisms.Guard;

/// <summary>
/// Whether this host lets via load cgroup eBPF programs, the egress guard's kind. Asked only for a
/// mechanism that tags without cgroup eBPF (seccomp): where it is refused (an unprivileged LXC or
/// Incus container, a container profile that forbids bpf()), such a route goes without the guard,
/// said in one line, rather than not at all.
/// </summary>
public static class EgressGuardSupport
{
    private static readonly Lazy<string?> Refusal = new(Ask);

    /// <summary>Null when a cgroup_skb program loads here; else why not. Not root: unknown, taken as allowed (a dry run).</summary>
    public static string? Refused() => Refusal.Value;

    private static string? Ask()
    {
        if (!Exec.IsRoot) return null;
        try
        {
            BpfSyscall.LoadProgram(BpfProgType.CgroupSkb, BpfAttachType.CgroupInetEgress, [Asm.Mov.Imm(R0, 1), Asm.Return()], "via_probe").Dispose();
            return null;
        }
        catch (KernelException e)
        {
            return e.Message;
        }
    }
}
