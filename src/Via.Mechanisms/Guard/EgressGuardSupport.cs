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

    /// <summary>
    /// Whether via runs where bpf() may be refused although it is root: under a seccomp filter (a
    /// container profile) or in a user namespace other than the host's (an unprivileged container).
    /// Cheap: two small files of /proc, no system call that loads anything.
    /// </summary>
    public static bool MayBeConfined()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("Seccomp:", StringComparison.Ordinal) && line.AsSpan(8).Trim() is not "0") return true;
            string map = File.ReadAllText("/proc/self/uid_map");
            return string.Join(' ', map.Split((char[])[' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries)) != "0 0 4294967295";
        }
        catch (IOException) { return true; }
    }

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
