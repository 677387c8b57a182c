using System.Net;

namespace Via.Kernel.Netlink;

/// <summary>Making and removing links and addresses (what the netns mechanism needs): veth pairs, addresses, link state.</summary>
public sealed unsafe partial class Rtnl
{
    /// <summary>
    /// <c>ip link add NAME [index INDEX] type veth peer name PEER [netns NSFD index PEERINDEX]</c>;
    /// <paramref name="alias"/> tags both ends. The kernel honours the peer's index only when the
    /// first end's is given too (veth_newlink), so both are, or neither (<paramref name="index"/> 0).
    /// </summary>
    public void AddVeth(string name, string peer, string alias, int index = 0, int peerNamespaceFd = -1, int peerIndex = 0)
    {
        var nested = new NetlinkAttributes();
        nested.Struct(new IfInfoMsg { Index = index != 0 ? peerIndex : 0 });
        nested.String(Nl.IFLA_IFNAME, peer);
        nested.String(Nl.IFLA_IFALIAS, alias);
        if (peerNamespaceFd >= 0) nested.U32(Nl.IFLA_NET_NS_FD, (uint)peerNamespaceFd);
        var data = new NetlinkAttributes();
        data.Attr(Nl.VETH_INFO_PEER | Nl.NLA_F_NESTED, nested.Bytes);
        var info = new NetlinkAttributes();
        info.String(Nl.IFLA_INFO_KIND, "veth");
        info.Attr(Nl.IFLA_INFO_DATA | Nl.NLA_F_NESTED, data.Bytes);
        var b = new NetlinkMessageBuilder(Nl.RTM_NEWLINK, Nl.NLM_F_REQUEST | Nl.NLM_F_ACK | Nl.NLM_F_CREATE | Nl.NLM_F_EXCL)
            .Struct(new IfInfoMsg { Index = index })
            .String(Nl.IFLA_IFNAME, name)
            .String(Nl.IFLA_IFALIAS, alias)
            .Attr(Nl.IFLA_LINKINFO | Nl.NLA_F_NESTED, info.Bytes);
        Execute(new RtnlRequest(b, "ip link add", $"{name} type veth peer name {peer}", []));
    }

    /// <summary>
    /// <c>ip link set dev INDEX netns NSFD index NEWINDEX name NEWNAME</c>: moves a link into another
    /// network namespace, at the index and under the name asked for there. (A veth peer's own index
    /// in VETH_INFO_PEER is not honoured when it is born in another namespace, as of Linux 6.18; a
    /// move's IFLA_NEW_IFINDEX is.)
    /// </summary>
    public void MoveLink(int index, int namespaceFd, int newIndex, string newName) =>
        Execute(new RtnlRequest(new NetlinkMessageBuilder(Nl.RTM_NEWLINK, Nl.NLM_F_REQUEST | Nl.NLM_F_ACK)
            .Struct(new IfInfoMsg { Index = index })
            .U32(Nl.IFLA_NET_NS_FD, (uint)namespaceFd)
            .U32(Nl.IFLA_NEW_IFINDEX, (uint)newIndex)
            .String(Nl.IFLA_IFNAME, newName), "ip link set netns", $"ifindex {index} -> {newName} index {newIndex}", []));

    /// <summary><c>ip link del NAME</c>; false when there was no such link.</summary>
    public bool DeleteLink(string name) =>
        Execute(new RtnlRequest(new NetlinkMessageBuilder(Nl.RTM_DELLINK, Nl.NLM_F_REQUEST | Nl.NLM_F_ACK).Struct(new IfInfoMsg()).String(Nl.IFLA_IFNAME, name),
            "ip link del", name, [Errno.ENODEV, Errno.ENOENT]));

    /// <summary><c>ip link set dev INDEX up</c>.</summary>
    public void SetUp(int index) =>
        Execute(new RtnlRequest(new NetlinkMessageBuilder(Nl.RTM_NEWLINK, Nl.NLM_F_REQUEST | Nl.NLM_F_ACK)
            .Struct(new IfInfoMsg { Index = index, Flags = Link.IFF_UP, Change = Link.IFF_UP }), "ip link set up", $"ifindex {index}", []));

    /// <summary><c>ip addr add ADDRESS/LEN dev INDEX nodad</c> (IPv6 without duplicate address detection: usable at once).</summary>
    public void AddAddress(int index, IPAddress address, byte prefixLength)
    {
        var b = new NetlinkMessageBuilder(Nl.RTM_NEWADDR, Nl.NLM_F_REQUEST | Nl.NLM_F_ACK | Nl.NLM_F_CREATE | Nl.NLM_F_EXCL)
            .Struct(new IfAddrMsg { Family = NetlinkMessage.Family(address.AddressFamily), PrefixLen = prefixLength, Index = (uint)index })
            .Address(Nl.IFA_LOCAL, address)
            .Address(Nl.IFA_ADDRESS, address)
            .U32(Nl.IFA_FLAGS, Nl.IFA_F_NODAD);
        Execute(new RtnlRequest(b, "ip addr add", $"{address}/{prefixLength} dev {index}", []));
    }
}
