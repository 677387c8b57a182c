using Via.Kernel.Bpf;
using static Via.Kernel.Bpf.Register;

namespace Via.Mechanisms.Cgroup;

/// <summary>
/// The eBPF programs of the cgroup mechanism, as instruction lists (pure; loaded by the changes).
/// </summary>
public static class SocketMarkProgram
{
    /// <summary>Name the kernel shows for the mark program (bpftool prog show); via's tag on it.</summary>
    public const string Name = "via_mark";

    /// <summary>
    /// BPF_CGROUP_INET_SOCK_CREATE: every AF_INET/AF_INET6 socket created in the cgroup gets the
    /// route's mark before the program can use it, so the route lookup at connect() or the first
    /// sendto() already sees it and picks the route's source address.
    /// <code>
    /// r2 = MARK
    /// *(u32 *)(r1 + offsetof(struct bpf_sock, mark)) = r2
    /// r0 = 1          // allow the socket
    /// exit
    /// </code>
    /// </summary>
    public static Instruction[] SetMark(uint mark) =>
    [
        Asm.Mov.Imm(R2, unchecked((int)mark)),
        Asm.StoreMem(R1, BpfSockField.Mark, R2, Size.Word),
        Asm.Mov.Imm(R0, 1),
        Asm.Return(),
    ];
}
