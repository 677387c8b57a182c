using System.Buffers.Binary;
using Via.Kernel.Bpf;
using static Via.Kernel.Bpf.Register;

namespace Via.Mechanisms.Guard;

/// <summary>
/// The eBPF programs that keep a route's packets on its interface (DESIGN.md point 11), as
/// instruction lists (pure; loaded by <see cref="AttachEgressGuard"/>).
/// <para>
/// The mark and the table decide most packets, not all: a socket that names its way out
/// (SO_DONTROUTE, MSG_DONTROUTE, IP_UNICAST_IF, an IP_PKTINFO interface index, a multicast
/// interface, an IPv6 scope id) or sends a broadcast has its route chosen before or without the
/// marked lookup, and the kernel then sends it on the interface it names. The only place that sees
/// every packet with its output interface is the cgroup's egress hook, after routing: there a
/// packet of the route's programs passes only if it leaves by IFACE or by loopback (the host's own
/// addresses), and is dropped otherwise, the sender getting EPERM. systemd's
/// <c>RestrictNetworkInterfaces=</c> enforces the same rule per unit with the same hook.
/// </para>
/// </summary>
public static class EgressGuardPrograms
{
    public const string EgressName = "via_egress", IngressName = "via_ingress", Connect6Name = "via_connect6", CountersName = "via_counters";

    /// <summary>The loopback interface's index, the same in every network namespace (LOOPBACK_IFINDEX).</summary>
    public const int LoopbackIndex = 1;

    /// <summary>Slots of the counters map's one entry, each a u64, summed over CPUs when read.</summary>
    public enum Slot { OutPackets, OutBytes, InPackets, InBytes, RefusedPackets, RefusedBytes }

    public const uint CountersSize = 6 * sizeof(ulong);

    /// <summary>
    /// BPF_CGROUP_INET_EGRESS: pass a packet leaving by IFACE (counted as out) or loopback (not
    /// counted); drop any other (counted as refused). The counters are per CPU: no packet waits
    /// for another CPU's cache line.
    /// <code>
    /// r6 = ctx; r2 = ctx->ifindex
    /// if r2 == LOOPBACK goto loopback; if r2 == IFACE goto out
    /// r7 = offsetof(refused); r8 = 0 (drop); goto count
    /// out: r7 = offsetof(out); r8 = 1 (pass)
    /// count: r0 = lookup(counters, 0); if !r0 goto verdict; r0 += r7
    ///        lock *(u64 *)r0 += max(ctx->gso_segs, 1); lock *(u64 *)(r0 + 8) += ctx->len
    /// verdict: r0 = r8; exit
    /// loopback: r0 = 1; exit
    /// </code>
    /// </summary>
    public static Instruction[] Egress(int countersMapFd, int deviceIndex) =>
    [
        Asm.Mov.Reg(R6, R1),
        Asm.LoadMem(R2, R6, SkBuffField.IfIndex, Size.Word),
        Asm.JumpIf(JumpOp.Equal, R2, LoopbackIndex, "loopback"),
        Asm.JumpIf(JumpOp.Equal, R2, deviceIndex, "out"),
        Asm.Mov.Imm(R7, Offset(Slot.RefusedPackets)),
        Asm.Mov.Imm(R8, 0),
        Asm.Jump("count"),
        Asm.Mov.Imm(R7, Offset(Slot.OutPackets)).WithSymbol("out"),
        Asm.Mov.Imm(R8, 1),
        .. Count(countersMapFd, "count", "verdict"),
        Asm.Mov.Reg(R0, R8).WithSymbol("verdict"),
        Asm.Return(),
        Asm.Mov.Imm(R0, 1).WithSymbol("loopback"),
        Asm.Return(),
    ];

    /// <summary>
    /// BPF_CGROUP_INET_INGRESS: counts what reaches the route's sockets from outside (not by
    /// loopback) and lets everything pass.
    /// </summary>
    public static Instruction[] Ingress(int countersMapFd) =>
    [
        Asm.Mov.Reg(R6, R1),
        Asm.LoadMem(R2, R6, SkBuffField.IfIndex, Size.Word),
        Asm.JumpIf(JumpOp.Equal, R2, LoopbackIndex, "verdict"),
        Asm.Mov.Imm(R7, Offset(Slot.InPackets)),
        .. Count(countersMapFd, "count", "verdict"),
        Asm.Mov.Imm(R0, 1).WithSymbol("verdict"),
        Asm.Return(),
    ];

    /// <summary>
    /// Adds one packet (its segments, for a GSO/GRO packet) and its length to the pair of slots at
    /// offset R7 of this CPU's counters; R6 holds the __sk_buff. Jumps to <paramref name="done"/>.
    /// </summary>
    private static Instruction[] Count(int countersMapFd, string label, string done) =>
    [
        Asm.StoreImm(R10, -4, 0, Size.Word).WithSymbol(label),
        Asm.Mov.Reg(R2, R10),
        Asm.Add.Imm(R2, -4),
        .. Asm.LoadMapFd(R1, countersMapFd),
        Asm.Call(BpfHelper.MapLookupElem),
        Asm.JumpIf(JumpOp.Equal, R0, 0, done),
        Asm.Add.Reg(R0, R7),
        Asm.LoadMem(R3, R6, SkBuffField.GsoSegs, Size.Word),
        Asm.JumpIf(JumpOp.NotEqual, R3, 0, label + "_segs"),
        Asm.Mov.Imm(R3, 1),
        Asm.AtomicAdd(R0, 0, R3, Size.DWord).WithSymbol(label + "_segs"),
        Asm.LoadMem(R3, R6, SkBuffField.Len, Size.Word),
        Asm.AtomicAdd(R0, 8, R3, Size.DWord),
        Asm.Jump(done),
    ];

    private static int Offset(Slot slot) => (int)slot * sizeof(ulong);

    public const int SolSocket = 1, SoBindToIfindex = 62;

    /// <summary>
    /// BPF_CGROUP_INET6_CONNECT: a connect() to an IPv6 link-local address (fe80::/10) names its
    /// interface by the scope id, which the kernel applies after this hook as the socket's bound
    /// device. Binding the socket to IFACE first makes the kernel refuse a scope id naming any
    /// other interface at once (EINVAL: "indices must coincide"), instead of a TCP SYN that the
    /// egress hook drops and TCP retransmits for two minutes. Other destinations are untouched.
    /// The address is read as a little-endian u32 of its first four bytes (x86-64, arm64).
    /// <code>
    /// r2 = ctx->user_ip6[0] &amp; 0xc0ff          // fe80::/10: first byte 0xfe, next two bits 10
    /// if r2 != 0x80fe goto allow
    /// *(u32 *)(fp - 4) = IFACE
    /// bpf_setsockopt(ctx, SOL_SOCKET, SO_BINDTOIFINDEX, fp - 4, 4)   // result ignored: already bound is fine
    /// allow: r0 = 1; exit
    /// </code>
    /// </summary>
    public static Instruction[] Connect6(int deviceIndex) =>
    [
        Asm.Mov.Reg(R6, R1),
        Asm.LoadMem(R2, R6, BpfSockAddrField.UserIp6, Size.Word),
        Asm.And.Imm(R2, 0xc0ff),
        Asm.JumpIf(JumpOp.NotEqual, R2, 0x80fe, "allow"),
        Asm.StoreImm(R10, -4, deviceIndex, Size.Word),
        Asm.Mov.Reg(R1, R6),
        Asm.Mov.Imm(R2, SolSocket),
        Asm.Mov.Imm(R3, SoBindToIfindex),
        Asm.Mov.Reg(R4, R10),
        Asm.Add.Imm(R4, -4),
        Asm.Mov.Imm(R5, 4),
        Asm.Call(BpfHelper.SetSockopt),
        Asm.Mov.Imm(R0, 1).WithSymbol("allow"),
        Asm.Return(),
    ];

    /// <summary>An interface index as IP_UNICAST_IF/IPV6_UNICAST_IF take it (network byte order),
    /// read as the little-endian u32 a program's load sees.</summary>
    public static int UnicastIfValue(int deviceIndex) => BinaryPrimitives.ReverseEndianness(deviceIndex);
}
