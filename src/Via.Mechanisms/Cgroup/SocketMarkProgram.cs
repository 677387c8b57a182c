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

    public const int SolSocket = 1, SoDontRoute = 5, SoBindToDevice = 25, SoMark = 36, SoBindToIfindex = 62;
    public const int IpProtoIp = 0, IpUnicastIf = 50, IpProtoIpv6 = 41, Ipv6UnicastIf = 76;

    /// <summary>
    /// BPF_CGROUP_SETSOCKOPT: refuses, with EPERM, the options that would take a socket out of the
    /// route, where the way out is known before any packet (the egress guard stays the backstop):
    /// SO_MARK (even for root: CAP_NET_ADMIN does not help against a cgroup hook), SO_BINDTODEVICE,
    /// SO_BINDTOIFINDEX, SO_DONTROUTE (its lookup skips the table's kill switch and finds another
    /// interface's on-link route), and IP_UNICAST_IF / IPV6_UNICAST_IF naming an interface other
    /// than IFACE (0, "none", and IFACE itself pass). Every other option passes untouched.
    /// <code>
    /// r2 = ctx->level
    /// if r2 == SOL_SOCKET goto socket; if r2 == IPPROTO_IP goto ip; if r2 == IPPROTO_IPV6 goto ipv6; goto allow
    /// socket: r2 = ctx->optname; if r2 in (SO_MARK, SO_BINDTODEVICE, SO_BINDTOIFINDEX, SO_DONTROUTE) goto deny; goto allow
    /// ip:     r2 = ctx->optname; if r2 == IP_UNICAST_IF goto unicast_if; goto allow
    /// ipv6:   r2 = ctx->optname; if r2 == IPV6_UNICAST_IF goto unicast_if; goto allow
    /// unicast_if: r3 = ctx->optval; r4 = ctx->optval_end; r5 = r3 + 4; if r5 > r4 goto deny
    ///         r2 = *(u32 *)r3; if r2 == 0 goto allow; if r2 == htonl(IFACE) goto allow
    /// deny:  r0 = 0; exit      // the kernel turns 0 into EPERM
    /// allow: r0 = 1; exit
    /// </code>
    /// </summary>
    public static Instruction[] GuardSetsockopt(int deviceIndex) =>
    [
        Asm.LoadMem(R2, R1, BpfSockoptField.Level, Size.Word),
        Asm.JumpIf(JumpOp.Equal, R2, SolSocket, "socket"),
        Asm.JumpIf(JumpOp.Equal, R2, IpProtoIp, "ip"),
        Asm.JumpIf(JumpOp.Equal, R2, IpProtoIpv6, "ipv6"),
        Asm.Jump("allow"),
        Asm.LoadMem(R2, R1, BpfSockoptField.OptName, Size.Word).WithSymbol("socket"),
        Asm.JumpIf(JumpOp.Equal, R2, SoMark, "deny"),
        Asm.JumpIf(JumpOp.Equal, R2, SoBindToDevice, "deny"),
        Asm.JumpIf(JumpOp.Equal, R2, SoBindToIfindex, "deny"),
        Asm.JumpIf(JumpOp.Equal, R2, SoDontRoute, "deny"),
        Asm.Jump("allow"),
        Asm.LoadMem(R2, R1, BpfSockoptField.OptName, Size.Word).WithSymbol("ip"),
        Asm.JumpIf(JumpOp.Equal, R2, IpUnicastIf, "unicast_if"),
        Asm.Jump("allow"),
        Asm.LoadMem(R2, R1, BpfSockoptField.OptName, Size.Word).WithSymbol("ipv6"),
        Asm.JumpIf(JumpOp.Equal, R2, Ipv6UnicastIf, "unicast_if"),
        Asm.Jump("allow"),
        Asm.LoadMem(R3, R1, BpfSockoptField.OptVal, Size.DWord).WithSymbol("unicast_if"),
        Asm.LoadMem(R4, R1, BpfSockoptField.OptValEnd, Size.DWord),
        Asm.Mov.Reg(R5, R3),
        Asm.Add.Imm(R5, 4),
        Asm.JumpIfReg(JumpOp.Greater, R5, R4, "deny"),
        Asm.LoadMem(R2, R3, 0, Size.Word),
        Asm.JumpIf(JumpOp.Equal, R2, 0, "allow"),
        Asm.JumpIf(JumpOp.Equal, R2, Guard.EgressGuardPrograms.UnicastIfValue(deviceIndex), "allow"),
        Asm.Mov.Imm(R0, 0).WithSymbol("deny"),
        Asm.Return(),
        Asm.Mov.Imm(R0, 1).WithSymbol("allow"),
        Asm.Return(),
    ];
}
