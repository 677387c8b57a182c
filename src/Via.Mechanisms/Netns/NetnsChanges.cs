using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Via.Kernel;
using Via.Kernel.Netlink;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Netns;

/// <summary><c>ip netns add</c>, at a file under via's state directory (<see cref="NetnsAddressing.NamespacePath"/>).</summary>
public sealed record CreateNetworkNamespace(string Path) : HostChange
{
    public static readonly ChangeCodec Codec = new("netns", c => new CreateNetworkNamespace(JsonFields.Need(c, "path")));

    public override string Kind => Codec.Kind;
    public override string Command => $"unshare --net={Path} true  # ip netns add, held at {Path}";
    public override string UndoCommand => $"umount -l {Path}; rm {Path}";

    public override void Write(Utf8JsonWriter w) => w.WriteString("path", Path);

    public override void Apply(Host host)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        Namespaces.CreateNetwork(Path);
    }

    public override bool Undo(Host host) => Namespaces.RemoveNetwork(Path);
}

/// <summary>
/// The veth pair between the host and the route's namespace, with its addresses and routes:
/// <c>ip link add via-tN type veth peer name via0 netns NS index 86</c>, addresses on both ends
/// (IPv6 without DAD, so usable at once), the namespace's default routes through the host end, and
/// forwarding on the host end (ours: it goes with the link). Undone by deleting the host end (the
/// namespace end, its addresses and routes go with it).
/// </summary>
public sealed record CreateVethPair(string RouteId, uint Table, bool Ipv6) : HostChange
{
    public static readonly ChangeCodec Codec = new("veth", c => new CreateVethPair(JsonFields.Need(c, "route"), c.GetProperty("table").GetUInt32(), c.GetProperty("ipv6").GetBoolean()));

    private NetnsAddressing A => new(RouteId, Table);

    public override string Kind => Codec.Kind;

    public override string Command =>
        $"ip link add {A.HostName} index {Table} type veth peer name {NetnsAddressing.PeerName} netns {A.NamespacePath} index {NetnsAddressing.PeerIndex}"
        + $"; ip addr add {A.Host4}/30 dev {A.HostName}; ip -n NS addr add {A.Peer4}/30 dev {NetnsAddressing.PeerName}; ip -n NS route add default via {A.Host4}"
        + (Ipv6 ? $"; ip addr add {A.Host6}/64 dev {A.HostName} nodad; ip -n NS addr add {A.Peer6}/64 dev {NetnsAddressing.PeerName} nodad; ip -n NS -6 route add default via {A.Host6}" : "")
        + $"; sysctl net.ipv4.conf.{A.HostName}.forwarding=1" + (Ipv6 ? $" net.ipv6.conf.{A.HostName}.force_forwarding=1" : "");

    public override string UndoCommand => $"ip link del {A.HostName}";

    public override void Write(Utf8JsonWriter w)
    {
        w.WriteString("route", RouteId);
        w.WriteNumber("table", Table);
        w.WriteBoolean("ipv6", Ipv6);
    }

    public override void Apply(Host host)
    {
        var a = A;
        // The peer is born in the namespace at the index the egress guard names. The kernel takes a
        // peer's index only with the first end's (veth_newlink): the host end asks for the table's
        // number. Where that index is taken, both ends are made here, the peer under a name of via's,
        // and the peer is moved in (Rtnl.MoveLink: about 25 ms more, the move waits for RCU).
        // Killed between the two, the pair is here under via's names; deleting the host end deletes both.
        int index = (int)Table;
        using (var ns = SafeFd.Open(a.NamespacePath, 0))
        {
            try
            {
                host.Rtnl.AddVeth(a.HostName, NetnsAddressing.PeerName, $"via {RouteId}", index, ns.Value, NetnsAddressing.PeerIndex);
            }
            catch (KernelException e) when (e.ErrorCode is Errno.EBUSY or Errno.EEXIST)
            {
                string peer = a.HostName + "p";
                host.Rtnl.AddVeth(a.HostName, peer, $"via {RouteId}");
                var links = host.Rtnl.Links();
                index = links.FirstOrDefault(l => l.Name == a.HostName)?.Index ?? throw new InvalidOperationException($"the veth {a.HostName} just made is not there");
                int peerIndex = links.FirstOrDefault(l => l.Name == peer)?.Index ?? throw new InvalidOperationException($"the veth {peer} just made is not there");
                host.Rtnl.MoveLink(peerIndex, ns.Value, NetnsAddressing.PeerIndex, NetnsAddressing.PeerName);
            }
        }
        host.Rtnl.AddAddress(index, a.Host4, 30);
        if (Ipv6) host.Rtnl.AddAddress(index, a.Host6, 64);
        Sysctl.Write($"net/ipv4/conf/{a.HostName}/forwarding", "1");
        if (Ipv6) Sysctl.Write($"net/ipv6/conf/{a.HostName}/force_forwarding", "1");
        host.Rtnl.SetUp(index);
        Namespaces.InNetwork(a.NamespacePath, () =>
        {
            using var inside = Rtnl.Open();
            inside.SetUp(1); // lo
            inside.AddAddress(NetnsAddressing.PeerIndex, a.Peer4, 30);
            if (Ipv6) inside.AddAddress(NetnsAddressing.PeerIndex, a.Peer6, 64);
            inside.SetUp(NetnsAddressing.PeerIndex);
            inside.Add(new Route(AddressFamily.InterNetwork, 254, Gateway: a.Host4, OutputLink: NetnsAddressing.PeerIndex));
            if (Ipv6) inside.Add(new Route(AddressFamily.InterNetworkV6, 254, Gateway: a.Host6, OutputLink: NetnsAddressing.PeerIndex));
            return 0;
        });
    }

    public override bool Undo(Host host) => host.Rtnl.DeleteLink(A.HostName);
}

/// <summary>
/// Forwarding on IFACE, for the replies that come in on it and go on to the namespace: IPv4's is
/// decided by the input interface's own <c>conf/IFACE/forwarding</c>, IPv6's by the global
/// <c>conf/all/forwarding</c> or, since Linux 6.17, the input interface's <c>force_forwarding</c>
/// (ip6_forward). The global switch is never touched: it would make every interface a router and
/// stop IPv6 router advertisements being accepted on all of them. Where it is off, the nft table's
/// forward chain lets through from IFACE only the replies of the namespace's connections
/// (<see cref="NetnsMechanism"/>).
/// <para>Shared by every netns route on IFACE: the value before the first one (<see cref="Ipv4Before"/>,
/// <see cref="Ipv6Before"/>, inherited by later routes from the journals) is restored by the last
/// one to leave, under via's lock.</para>
/// </summary>
/// <param name="Ipv6Before">force_forwarding before; null when IPv6 is not forwarded for the route.</param>
public sealed record InterfaceForwarding(string RouteId, string Device, string Ipv4Before, string? Ipv6Before) : HostChange
{
    public static readonly ChangeCodec Codec = new("forwarding", c => new InterfaceForwarding(JsonFields.Need(c, "route"), JsonFields.Need(c, "device"),
        JsonFields.Need(c, "ipv4Before"), JsonFields.Str(c, "ipv6Before")));

    public override string Kind => Codec.Kind;

    public override string Command => $"sysctl net.ipv4.conf.{Device}.forwarding=1" + (Ipv6Before is null ? "" : $" net.ipv6.conf.{Device}.force_forwarding=1");

    public override string UndoCommand => $"sysctl net.ipv4.conf.{Device}.forwarding={Ipv4Before}" + (Ipv6Before is null ? "" : $" net.ipv6.conf.{Device}.force_forwarding={Ipv6Before}")
        + "  # by the last netns route on " + Device;

    public override void Write(Utf8JsonWriter w)
    {
        w.WriteString("route", RouteId);
        w.WriteString("device", Device);
        w.WriteString("ipv4Before", Ipv4Before);
        if (Ipv6Before is not null) w.WriteString("ipv6Before", Ipv6Before);
    }

    public override void Apply(Host host)
    {
        Sysctl.Write($"net/ipv4/conf/{Device}/forwarding", "1");
        if (Ipv6Before is not null) Sysctl.Write($"net/ipv6/conf/{Device}/force_forwarding", "1");
    }

    /// <summary>Restores the values from before the first netns route on IFACE, unless another route's journal still has this change.</summary>
    public override bool Undo(Host host)
    {
        if (Others(RouteId, Device).Any()) return false;
        if (!Directory.Exists(Sysctl.Path($"net/ipv4/conf/{Device}"))) return false; // IFACE is gone, and its settings with it
        Sysctl.Write($"net/ipv4/conf/{Device}/forwarding", Ipv4Before);
        if (Ipv6Before is not null) Sysctl.Write($"net/ipv6/conf/{Device}/force_forwarding", Ipv6Before);
        return true;
    }

    /// <summary>The forwarding changes of other routes' journals on <paramref name="device"/>.</summary>
    public static IEnumerable<InterfaceForwarding> Others(string routeId, string device) =>
        Journal.ReadAll().Where(j => j.Route.Id != routeId).SelectMany(j => j.Route.Changes.OfType<InterfaceForwarding>()).Where(f => f.Device == device);
}

/// <summary>
/// A rule of the netns mechanism's in the host's policy routing: <c>ip rule add iif via-tN lookup T</c>
/// (the namespace's forwarded packets take the route's table, with its kill switch) and
/// <c>ip rule add from PEER lookup T</c> (the reverse-path lookup of the replies, after the NAT is
/// undone, so strict rp_filter passes them). Its own kind, not the engine's routing: the route's
/// watcher re-plans the engine's rules from IFACE and would take these for strays.
/// </summary>
public sealed record ForwardRule(Rule Rule) : HostChange
{
    public static readonly ChangeCodec Codec = new("netns-rule", c => new ForwardRule(new Rule(
        (AddressFamily)c.GetProperty("family").GetInt32(),
        c.GetProperty("priority").GetUInt32(),
        c.GetProperty("table").GetUInt32(),
        Source: JsonFields.Ip(c, "source"),
        SourceLength: c.GetProperty("sourceLength").GetByte(),
        Protocol: c.GetProperty("protocol").GetByte(),
        InputInterface: JsonFields.Str(c, "iif"))));

    public override string Kind => Codec.Kind;

    public override string Command => "ip " + Text("add");
    public override string UndoCommand => "ip " + Text("del");

    public override void Write(Utf8JsonWriter w)
    {
        w.WriteNumber("family", (int)Rule.Family);
        w.WriteNumber("priority", Rule.Priority);
        w.WriteNumber("table", Rule.Table);
        JsonFields.Address(w, "source", Rule.Source);
        w.WriteNumber("sourceLength", Rule.SourceLength);
        w.WriteNumber("protocol", Rule.Protocol);
        if (Rule.InputInterface is not null) w.WriteString("iif", Rule.InputInterface);
    }

    public override void Apply(Host host) => host.Rtnl.Add(Rule);
    public override bool Undo(Host host) => host.Rtnl.Delete(Rule);
    public override RtnlRequest ApplyRequest => Rtnl.AddRequest(Rule);
    public override RtnlRequest UndoRequest => Rtnl.DeleteRequest(Rule);

    private string Text(string verb) =>
        $"{(Rule.Family == AddressFamily.InterNetworkV6 ? "-6 " : "")}rule {verb} pref {Rule.Priority}"
        + (Rule.Source is null ? "" : $" from {Rule.Source}/{Rule.SourceLength}")
        + (Rule.InputInterface is null ? "" : $" iif {Rule.InputInterface}")
        + $" lookup {Rule.Table} proto {Rule.Protocol}";
}

/// <summary>/proc/sys/net, in via's network namespace.</summary>
internal static class Sysctl
{
    public static string Path(string name) => "/proc/sys/" + name;

    public static string? Read(string name)
    {
        try { return File.ReadAllText(Path(name)).Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    public static void Write(string name, string value)
    {
        try { File.WriteAllText(Path(name), value); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"cannot set {name.Replace('/', '.')}={value}: {e.Message}");
        }
    }
}
