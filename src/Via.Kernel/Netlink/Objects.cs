using System.Net;
using System.Net.Sockets;

namespace Via.Kernel.Netlink;

/// <summary>A network interface (ip link).</summary>
/// <param name="Type">Its ARPHRD_* hardware type (ifinfomsg.ifi_type): <see cref="ArphrdEther"/> for Ethernet
/// (veth, bridges, Wi-Fi too), 65534 (ARPHRD_NONE) for WireGuard and tun; 0 where it was not read.</param>
public sealed record Link(int Index, string Name, uint Flags, ushort Type = 0)
{
    public const ushort ArphrdEther = 1;
    public const uint IFF_UP = 0x1, IFF_LOOPBACK = 0x8, IFF_POINTOPOINT = 0x10, IFF_RUNNING = 0x40, IFF_LOWER_UP = 0x10000;
    public bool IsUp => (Flags & IFF_UP) != 0;
    public bool IsPointToPoint => (Flags & IFF_POINTOPOINT) != 0;
    public bool IsLoopback => (Flags & IFF_LOOPBACK) != 0;
}

/// <summary>An address on an interface (ip addr). Peer is the other end of a point-to-point link.</summary>
public sealed record InterfaceAddress(int LinkIndex, IPAddress Local, byte PrefixLength, byte Scope, IPAddress? Peer)
{
    public AddressFamily Family => Local.AddressFamily;
    public const byte ScopeUniverse = 0, ScopeLink = 253, ScopeHost = 254;
}

public enum RouteType : byte { Unicast = 1, Local = 2, Broadcast = 3, Unreachable = 7 }

/// <summary>
/// A route (ip route). Equivalent of <c>ip route add [TYPE] DST/LEN via GATEWAY dev LINK src SRC table T metric M proto P</c>.
/// </summary>
public sealed record Route(
    AddressFamily Family,
    uint Table,
    RouteType Type = RouteType.Unicast,
    IPAddress? Destination = null,
    byte DestinationLength = 0,
    IPAddress? Gateway = null,
    int OutputLink = 0,
    IPAddress? PreferredSource = null,
    uint Metric = 0,
    byte Protocol = 0,
    byte Scope = 0)
{
    public bool IsDefault => DestinationLength == 0;
}

public enum RuleAction : byte { ToTable = 1, Unreachable = 7 }

/// <summary>
/// A policy-routing rule (ip rule). Equivalent of
/// <c>ip rule add [not] [from SRC/LEN] [to DST/LEN] [iif I] [oif O] [fwmark MARK/MASK] [ipproto P] [dport A-B] lookup TABLE [suppress_prefixlength N] pref PRIORITY proto P</c>.
/// via makes rules by source, destination, fwmark, ip protocol and destination port; the other
/// selectors are read from the host, so that via can tell which of another program's rules could
/// take its packets.
/// </summary>
/// <param name="IpProtocol">'ipproto P' (FRA_IP_PROTO): the packet's transport protocol (6 tcp, 17 udp); 0 for any.</param>
/// <param name="DestinationPorts">'dport A-B' (FRA_DPORT_RANGE): the destination port is in the range; null for any.</param>
/// <param name="Invert">'not': the rule matches the packets its selectors do not (wg-quick's 'not fwmark 0xca6c').</param>
/// <param name="SuppressPrefixLength">'suppress_prefixlength N': a lookup result with a prefix this short or shorter is ignored.</param>
/// <param name="OtherSelectors">The rule also selects by something else (tos, uid range, source ports, l3mdev, ifgroup).</param>
public sealed record Rule(
    AddressFamily Family,
    uint Priority,
    uint Table,
    RuleAction Action = RuleAction.ToTable,
    uint? Mark = null,
    uint? MarkMask = null,
    IPAddress? Source = null,
    byte SourceLength = 0,
    byte Protocol = 0,
    IPAddress? Destination = null,
    byte DestinationLength = 0,
    string? InputInterface = null,
    string? OutputInterface = null,
    bool Invert = false,
    uint? SuppressPrefixLength = null,
    bool OtherSelectors = false,
    byte IpProtocol = 0,
    PortRange? DestinationPorts = null)
{
    /// <summary>FIB_RULE_INVERT in fib_rule_hdr.flags.</summary>
    public const uint FlagInvert = 0x2;

    /// <summary>
    /// How many selectors the rule sets. The kernel's RTM_DELRULE takes a selector left out as "any"
    /// (fib_rules.c rule_find): deleting 'fwmark M lookup T' removes the first rule with that mark and
    /// table, also one that has 'dport 3306' too. Rules sharing a priority and table are therefore
    /// deleted most selective first (and added least selective first, so that undoing in reverse
    /// does that).
    /// </summary>
    public int SelectorCount =>
        (Source is null ? 0 : 1) + (Destination is null ? 0 : 1) + (Mark is null ? 0 : 1) + (IpProtocol == 0 ? 0 : 1)
        + (DestinationPorts is null ? 0 : 1) + (InputInterface is null ? 0 : 1) + (OutputInterface is null ? 0 : 1);
}

/// <summary>
/// struct fib_rule_port_range { __u16 start; __u16 end; }, in host byte order. The kernel refuses
/// 0 and an end of 65535 (fib_rule_port_range_valid: start != 0, end &lt; 0xffff, start &lt;= end).
/// </summary>
public readonly record struct PortRange(ushort First, ushort Last)
{
    /// <summary>The highest port a rule's range may end at.</summary>
    public const ushort MaxLast = 0xfffe;

    public bool IsValid => First != 0 && Last != 0 && Last <= MaxLast && First <= Last;

    /// <summary>"3306" or "8000-8080", as ip rule writes it.</summary>
    public override string ToString() => First == Last ? $"{First}" : $"{First}-{Last}";
}
