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
    /// <param name="only">--only: a packet leaving by another interface is refused only when its destination
    /// is one of these (<see cref="Matches"/>); any other passes, uncounted: it takes the default path.</param>
    public static Instruction[] Egress(int countersMapFd, int deviceIndex, DestinationFilters? only = null) =>
    [
        Asm.Mov.Reg(R6, R1),
        Asm.LoadMem(R2, R6, SkBuffField.IfIndex, Size.Word),
        Asm.JumpIf(JumpOp.Equal, R2, LoopbackIndex, "loopback"),
        Asm.JumpIf(JumpOp.Equal, R2, deviceIndex, "out"),
        .. only is null ? [] : Matches(only, "refuse", "loopback"),
        Asm.Mov.Imm(R7, Offset(Slot.RefusedPackets)).WithSymbol("refuse"),
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

    /// <summary>Where the packet's first bytes are copied on the stack: the IP header (IPv6's 40 fixed
    /// bytes, IPv4's first 20), and the transport header's two ports after it.</summary>
    private const short Header = -64, Ports = -24;

    /// <summary>IPv6 extension headers that may stand between the fixed header and TCP or UDP: hop-by-hop
    /// options, routing, fragment, destination options. A packet with one is taken to match a port filter
    /// (fail closed): the ports are not looked for behind them.</summary>
    private static readonly int[] ExtensionHeaders = [0, 43, 44, 60];

    /// <summary>
    /// Whether the packet (R6: its __sk_buff) goes to a destination of <paramref name="only"/>: jumps to
    /// <paramref name="match"/> if so, else to <paramref name="other"/>. The destination, protocol and
    /// destination port are read from the packet itself with bpf_skb_load_bytes (a cgroup_skb program
    /// sees the packet from its IP header): the socket's fields would not do, an unconnected UDP socket
    /// has no peer. A packet that cannot be read is taken to match (fail closed). Uses R7 (protocol),
    /// R8 (destination port, host order, 0 when none), R9 (IP version).
    /// <code>
    /// skb_load_bytes(ctx, 0, fp-64, 1); r9 = version
    /// v4: skb_load_bytes(ctx, 0, fp-64, 20); r7 = protocol; r2 = ihl * 4     (ports at r2)
    /// v6: skb_load_bytes(ctx, 0, fp-64, 40); r7 = next header; r2 = 40
    /// r8 = 0; if tcp or udp: skb_load_bytes(ctx, r2, fp-24, 4); r8 = be16(*(u16 *)(fp-22))
    /// per filter: (dst word &amp; mask) == network word, each word of its prefix; r7 == proto; first &lt;= r8 &lt;= last
    /// </code>
    /// </summary>
    public static Instruction[] Matches(DestinationFilters only, string match, string other)
    {
        List<Instruction> code =
        [
            .. LoadBytes(0, 1, match),
            Asm.LoadMem(R9, R10, Header, Size.Byte),
            Asm.Rsh.Imm(R9, 4),
            Asm.JumpIf(JumpOp.Equal, R9, 4, "m_v4"),
            Asm.JumpIf(JumpOp.Equal, R9, 6, "m_v6"),
            Asm.Jump(match),
        ];
        foreach (var (family, version, length) in new[] { (System.Net.Sockets.AddressFamily.InterNetwork, 4, 20), (System.Net.Sockets.AddressFamily.InterNetworkV6, 6, 40) })
        {
            var filters = only.For(family).ToList();
            bool v4 = version == 4;
            string v = "m_v" + version;
            var block = new List<Instruction>(LoadBytes(0, length, match));
            block[0] = block[0].WithSymbol(v);
            code.AddRange(block);
            code.Add(Asm.LoadMem(R7, R10, (short)(Header + (v4 ? 9 : 6)), Size.Byte));
            if (v4)
            {
                code.Add(Asm.LoadMem(R2, R10, Header, Size.Byte));
                code.Add(Asm.And.Imm(R2, 0xf));
                code.Add(Asm.Lsh.Imm(R2, 2));
            }
            else
            {
                code.Add(Asm.Mov.Imm(R2, 40));
            }
            code.Add(Asm.Mov.Imm(R8, 0));
            if (filters.Any(f => f.Port is not null))
            {
                if (!v4) code.AddRange(ExtensionHeaders.Select(h => Asm.JumpIf(JumpOp.Equal, R7, h, match)));
                code.Add(Asm.JumpIf(JumpOp.Equal, R7, 6, v + "_ports"));
                code.Add(Asm.JumpIf(JumpOp.NotEqual, R7, 17, v + "_filters"));
                code.Add(Asm.Mov.Reg(R1, R6).WithSymbol(v + "_ports"));
                code.Add(Asm.Mov.Reg(R3, R10));
                code.Add(Asm.Add.Imm(R3, Ports));
                code.Add(Asm.Mov.Imm(R4, 4));
                code.Add(Asm.Call(BpfHelper.SkbLoadBytes));
                code.Add(Asm.JumpIf(JumpOp.NotEqual, R0, 0, v + "_filters"));
                code.Add(Asm.LoadMem(R8, R10, Ports + 2, Size.Half));
                code.Add(Asm.ToBigEndian(R8, 16));
            }
            code.Add(Asm.Mov.Imm(R0, 0).WithSymbol(v + "_filters"));
            for (int i = 0; i < filters.Count; i++)
            {
                string next = $"{v}_f{i + 1}";
                code.AddRange(Filter(filters[i], (short)(Header + (v4 ? 16 : 24)), next, match));
                code.Add(Asm.Mov.Imm(R0, 0).WithSymbol(next));
            }
            code.Add(Asm.Jump(other));
        }
        return [.. code];
    }

    /// <summary>skb_load_bytes(ctx, offset, fp-64, length); on failure goto <paramref name="failed"/>.</summary>
    private static Instruction[] LoadBytes(int offset, int length, string failed) =>
    [
        Asm.Mov.Reg(R1, R6),
        Asm.Mov.Imm(R2, offset),
        Asm.Mov.Reg(R3, R10),
        Asm.Add.Imm(R3, Header),
        Asm.Mov.Imm(R4, length),
        Asm.Call(BpfHelper.SkbLoadBytes),
        Asm.JumpIf(JumpOp.NotEqual, R0, 0, failed),
    ];

    /// <summary>One filter: falls to <paramref name="next"/> at its first mismatch, else jumps to <paramref name="match"/>.
    /// The destination address is at <paramref name="destination"/> on the stack.</summary>
    private static IEnumerable<Instruction> Filter(DestinationFilter f, short destination, string next, string match)
    {
        if (f.Network is { } network)
        {
            byte[] net = network.GetAddressBytes();
            byte[] mask = DestinationFilter.Masked(new System.Net.IPAddress(Enumerable.Repeat((byte)0xff, net.Length).ToArray()), f.PrefixLength).GetAddressBytes();
            for (int w = 0; w * 32 < f.PrefixLength; w++)
            {
                // The words as a little-endian load sees them; Mov32 keeps a word with bit 31 set unsigned.
                uint m = BinaryPrimitives.ReadUInt32LittleEndian(mask.AsSpan(w * 4)), n = BinaryPrimitives.ReadUInt32LittleEndian(net.AsSpan(w * 4));
                yield return Asm.LoadMem(R2, R10, (short)(destination + w * 4), Size.Word);
                if (m != uint.MaxValue) yield return Asm.And.Imm(R2, unchecked((int)m));
                yield return Asm.Mov32.Imm(R3, unchecked((int)n));
                yield return Asm.JumpIfReg(JumpOp.NotEqual, R2, R3, next);
            }
        }
        if (f.Port is { } port)
        {
            yield return Asm.JumpIf(JumpOp.NotEqual, R7, port.ProtocolNumber, next);
            yield return Asm.JumpIf(JumpOp.Less, R8, port.First, next);
            yield return Asm.JumpIf(JumpOp.Greater, R8, port.Last, next);
        }
        yield return Asm.Jump(match);
    }

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
