namespace Via.Planning;

/// <summary>
/// The socket-mark bits a common program documents, whether or not it runs here yet: a program
/// started after via's routes (or one whose marks live only in its firewall rules, which via does
/// not read) must still find its bits free.
/// </summary>
/// <param name="Field">Bits the program owns: it sets and clears them under this mask (e.g. nftables
/// 'meta mark set mark and ~FIELD xor VALUE'), so via may not keep its own bits there.</param>
/// <param name="Exact">A whole 32-bit mark the program puts on its sockets and matches exactly: via
/// only has to avoid handing out the same value under its mask, not every bit of it.</param>
/// <param name="Tables">Routing tables the program's rules look up: how a rule is recognised as its.</param>
public sealed record KnownProgram(string Name, uint Field, uint? Exact, uint[] Tables, string Source)
{
    public static readonly IReadOnlyList<KnownProgram> All =
    [
        // tailscale util/linuxfw (linuxfw.go): TailscaleFwmarkMask "0xff0000", TailscaleSubnetRouteMark
        // "0x40000", TailscaleBypassMark "0x80000"; its rules at 5210-5270, its routes in table 52.
        new("Tailscale", 0x00ff0000, null, [52], "tailscale util/linuxfw: fwmark mask 0xff0000 (subnet-route mark 0x40000, bypass mark 0x80000)"),
        // wg-quick(8): 'wg set wg0 fwmark 51820' on the tunnel's socket, 'ip rule add not fwmark 51820 table 51820'.
        new("WireGuard (wg-quick)", 0, 0xca6c, [51820], "wg-quick(8): fwmark 51820 (0xca6c) on its socket, 'not fwmark 51820 lookup 51820'"),
        // kube-proxy --iptables-masquerade-bit=14 (0x4000, KUBE-MARK-MASQ); kubelet --iptables-drop-bit=15 (0x8000, KUBE-MARK-DROP).
        new("kube-proxy", 0x0000c000, null, [], "kube-proxy/kubelet: masquerade bit 0x4000, drop bit 0x8000"),
        // Calico Felix: IptablesMarkMask (FELIX_IPTABLESMARKMASK) defaults to 0xffff0000; it allocates its bits from it.
        new("Calico", 0xffff0000, null, [], "Calico Felix: IptablesMarkMask default 0xffff0000"),
        // Cilium bpf/lib/common.h: MARK_MAGIC_HOST_MASK 0x0F00; its rules 'fwmark 0x200/0xf00 lookup 2004', 0xa00/0xf00 lookup 2005.
        new("Cilium", 0x00000f00, null, [2004, 2005], "Cilium: magic mark bits 0x0f00 (bpf/lib/common.h)"),
        // Mullvad talpid-core (split_tunnel, firewall): fwmark 0x6d6f6c65 ("mole") on its tunnel socket and on
        // excluded apps' packets, table 1836018789 (the same number); its split-tunnel ct mark 0xf41 is a
        // conntrack mark, a separate field that rules never see.
        new("Mullvad", 0, 0x6d6f6c65, [1836018789], "Mullvad: fwmark 0x6d6f6c65 on its tunnel and excluded apps, table 1836018789"),
    ];

    /// <summary>Every field bit of the programs above.</summary>
    public static uint AllFields => All.Aggregate(0u, (bits, p) => bits | p.Field);

    /// <summary>The program a rule of the host most likely belongs to: by its table, else by its mark.</summary>
    public static KnownProgram? Owner(Kernel.Netlink.Rule rule) =>
        All.FirstOrDefault(p => p.Tables.Contains(rule.Table))
        ?? All.FirstOrDefault(p => rule.Mark is { } m && (p.Exact == m || (p.Field != 0 && rule.MarkMask is { } k && k != uint.MaxValue && (k & ~p.Field) == 0 && (m & ~p.Field) == 0)));
}
