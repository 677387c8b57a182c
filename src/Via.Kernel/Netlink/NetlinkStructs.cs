using System.Runtime.InteropServices;

namespace Via.Kernel.Netlink;

// Wire structs of <linux/netlink.h>, <linux/rtnetlink.h>, <linux/fib_rules.h>, <linux/if_link.h>,
// <linux/if_addr.h>. Layouts are checked against the C headers by LayoutTests.

/// <summary>struct nlmsghdr.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NlMsgHdr
{
    public uint Length;
    public ushort Type;
    public ushort Flags;
    public uint Sequence;
    public uint PortId;
}

/// <summary>struct rtmsg (routes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct RtMsg
{
    public byte Family, DstLen, SrcLen, Tos, Table, Protocol, Scope, Type;
    public uint Flags;
}

/// <summary>struct fib_rule_hdr (policy-routing rules).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FibRuleHdr
{
    public byte Family, DstLen, SrcLen, Tos, Table, Res1, Res2, Action;
    public uint Flags;
}

/// <summary>struct ifinfomsg (links).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IfInfoMsg
{
    public byte Family, Pad;
    public ushort Type;
    public int Index;
    public uint Flags, Change;
}

/// <summary>struct ifaddrmsg (addresses).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IfAddrMsg
{
    public byte Family, PrefixLen, Flags, Scope;
    public uint Index;
}

/// <summary>struct rtnexthop: one next hop inside RTA_MULTIPATH, followed by its own attributes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct RtNextHop
{
    public ushort Length;
    public byte Flags, Hops;
    public int IfIndex;
}

/// <summary>struct nlmsgerr: the error code, then the request's header.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NlMsgErr
{
    public int Error;
    public NlMsgHdr Request;
}

/// <summary>struct sockaddr_nl.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct SockaddrNl
{
    public ushort Family, Pad;
    public uint PortId, Groups;
}

internal static class Nl
{
    public const int AF_NETLINK = 16, NETLINK_ROUTE = 0, SOL_NETLINK = 270, NETLINK_EXT_ACK = 11, NETLINK_ADD_MEMBERSHIP = 1;

    // Multicast groups of NETLINK_ROUTE (enum rtnetlink_groups): what changed links, addresses, routes and rules announce.
    public const uint RTNLGRP_LINK = 1, RTNLGRP_IPV4_IFADDR = 5, RTNLGRP_IPV4_ROUTE = 7, RTNLGRP_IPV4_RULE = 8,
        RTNLGRP_IPV6_IFADDR = 9, RTNLGRP_IPV6_ROUTE = 11, RTNLGRP_IPV6_RULE = 19;
    public const int SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000;

    public const ushort NLMSG_ERROR = 2, NLMSG_DONE = 3;
    public const ushort RTM_GETLINK = 18, RTM_NEWADDR = 20, RTM_GETADDR = 22, RTM_NEWLINK = 16, RTM_DELLINK = 17,
        RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26, RTM_NEWRULE = 32, RTM_DELRULE = 33, RTM_GETRULE = 34;

    public const ushort NLM_F_REQUEST = 0x1, NLM_F_MULTI = 0x2, NLM_F_ACK = 0x4, NLM_F_DUMP = 0x300,
        NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400, NLM_F_ACK_TLVS = 0x200;

    public const ushort NLMSGERR_ATTR_MSG = 1;

    // Route attributes (enum rtattr_type_t).
    public const ushort RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_PRIORITY = 6, RTA_PREFSRC = 7, RTA_MULTIPATH = 9, RTA_TABLE = 15;
    // Rule attributes (FRA_*).
    public const ushort FRA_DST = 1, FRA_SRC = 2, FRA_IIFNAME = 3, FRA_PRIORITY = 6, FRA_FWMARK = 10, FRA_SUPPRESS_IFGROUP = 13, FRA_SUPPRESS_PREFIXLEN = 14,
        FRA_TABLE = 15, FRA_FWMASK = 16, FRA_OIFNAME = 17, FRA_L3MDEV = 19, FRA_UID_RANGE = 20, FRA_PROTOCOL = 21, FRA_IP_PROTO = 22,
        FRA_SPORT_RANGE = 23, FRA_DPORT_RANGE = 24;
    // Link and address attributes.
    public const ushort IFLA_IFNAME = 3, IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_FLAGS = 8;
    // Link creation: IFLA_LINKINFO { IFLA_INFO_KIND "veth", IFLA_INFO_DATA { VETH_INFO_PEER { ifinfomsg, attrs } } }.
    public const ushort IFLA_LINKINFO = 18, IFLA_NET_NS_FD = 28, IFLA_NEW_IFINDEX = 49, IFLA_IFALIAS = 20, IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2, VETH_INFO_PEER = 1;
    public const ushort NLA_F_NESTED = 0x8000;
    public const uint IFA_F_NODAD = 0x02;

    public const byte RT_TABLE_COMPAT = 252;
}
