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

    /// <summary>Name of the setsockopt guard (bpftool prog show).</summary>
    public const string GuardName = "via_guard";

    public const int SolSocket = 1, SoBindToDevice = 25, SoMark = 36, SoBindToIfindex = 62;

    /// <summary>
    /// BPF_CGROUP_SETSOCKOPT: refuses, with EPERM, the calls that would take a socket out of the
    /// route: SO_MARK (even for root: CAP_NET_ADMIN does not help against a cgroup hook),
    /// SO_BINDTODEVICE and SO_BINDTOIFINDEX. Every other option passes untouched.
    /// <code>
    /// r2 = *(u32 *)(r1 + offsetof(struct bpf_sockopt, level))
    /// if r2 != SOL_SOCKET goto allow
    /// r2 = *(u32 *)(r1 + offsetof(struct bpf_sockopt, optname))
    /// if r2 == SO_MARK goto deny; if r2 == SO_BINDTODEVICE goto deny; if r2 == SO_BINDTOIFINDEX goto deny
    /// allow: r0 = 1; exit
    /// deny:  r0 = 0; exit      // the kernel turns 0 into EPERM
    /// </code>
    /// </summary>
    public static Instruction[] GuardSetsockopt() =>
    [
        Asm.LoadMem(R2, R1, BpfSockoptField.Level, Size.Word),
        Asm.JumpIf(JumpOp.NotEqual, R2, SolSocket, "allow"),
        Asm.LoadMem(R2, R1, BpfSockoptField.OptName, Size.Word),
        Asm.JumpIf(JumpOp.Equal, R2, SoMark, "deny"),
        Asm.JumpIf(JumpOp.Equal, R2, SoBindToDevice, "deny"),
        Asm.JumpIf(JumpOp.Equal, R2, SoBindToIfindex, "deny"),
        Asm.Mov.Imm(R0, 1).WithSymbol("allow"),
        Asm.Return(),
        Asm.Mov.Imm(R0, 0).WithSymbol("deny"),
        Asm.Return(),
    ];
}
