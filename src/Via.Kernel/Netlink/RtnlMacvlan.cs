namespace Via.Kernel.Netlink;

/// <summary>Macvlan links (the netns mechanism's direct attachment, <c>--ip</c>).</summary>
public sealed partial class Rtnl
{
    /// <summary>IFLA_LINK: the lower device of a stacked link.</summary>
    internal const ushort IFLA_LINK = 5;

    /// <summary>IFLA_MACVLAN_MODE in IFLA_INFO_DATA, and MACVLAN_MODE_BRIDGE (linux/if_link.h).</summary>
    internal const ushort IFLA_MACVLAN_MODE = 1;
    internal const uint MACVLAN_MODE_BRIDGE = 4;

    /// <summary>
    /// <c>ip link add link LOWER name NAME index INDEX netns NSFD type macvlan mode bridge</c>, tagged
    /// with <paramref name="alias"/>: a macvlan on <paramref name="lowerIndex"/> (an index of the calling
    /// thread's namespace), born in the namespace of <paramref name="namespaceFd"/> under that name and
    /// index (a new link's ifi_index is honoured in its destination namespace, as of Linux 6.18). In
    /// bridge mode it talks to the outside and to its sibling macvlans, never to the lower device's own
    /// addresses (the frames go out of the port and do not come back).
    /// </summary>
    public void AddMacvlan(string name, int lowerIndex, string alias, int namespaceFd, int index)
    {
        var data = new NetlinkAttributes();
        data.U32(IFLA_MACVLAN_MODE, MACVLAN_MODE_BRIDGE);
        var info = new NetlinkAttributes();
        info.String(Nl.IFLA_INFO_KIND, "macvlan");
        info.Attr(Nl.IFLA_INFO_DATA | Nl.NLA_F_NESTED, data.Bytes);
        var b = new NetlinkMessageBuilder(Nl.RTM_NEWLINK, Nl.NLM_F_REQUEST | Nl.NLM_F_ACK | Nl.NLM_F_CREATE | Nl.NLM_F_EXCL)
            .Struct(new IfInfoMsg { Index = index })
            .String(Nl.IFLA_IFNAME, name)
            .String(Nl.IFLA_IFALIAS, alias)
            .U32(IFLA_LINK, (uint)lowerIndex)
            .U32(Nl.IFLA_NET_NS_FD, (uint)namespaceFd)
            .Attr(Nl.IFLA_LINKINFO | Nl.NLA_F_NESTED, info.Bytes);
        Execute(new RtnlRequest(b, "ip link add", $"link {lowerIndex} name {name} index {index} type macvlan mode bridge", []));
    }
}
