using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Via.Kernel;
using Via.Kernel.Netlink;
using Via.Kernel.Nftables;
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
/// <c>ip -n NS link add via0 index 86 type veth peer name via-tN netns HOST</c>, addresses on both
/// ends (IPv6 without DAD, so usable at once), the namespace's default routes through the host end,
/// and forwarding on the host end (ours: it goes with the link).
/// <para>Made from inside the namespace: via0 is the first end, so the kernel gives it the index asked
/// for (a new namespace has it free: no move, no RCU wait), and the host end, its peer, gets one the
/// kernel picks in via's namespace.</para>
/// <para>Undone by the namespace: <see cref="CreateNetworkNamespace"/>, undone after this, lets the
/// kernel destroy the namespace and the pair with it, asynchronously (cleanup_net), where deleting
/// the host end here would wait for RCU (unregister_netdevice: synchronize_net and rcu_barrier,
/// 15-30 ms here). Until then the host end forwards nothing: its forwarding goes off here, so that a
/// namespace something else still holds (a socket passed out of it) cannot reach the main table
/// once the route's rules are gone. 'via gc' deletes a host end no journal names.</para>
/// </summary>
public sealed record CreateVethPair(string RouteId, uint Table, bool Ipv6) : HostChange
{
    public static readonly ChangeCodec Codec = new("veth", c => new CreateVethPair(JsonFields.Need(c, "route"), c.GetProperty("table").GetUInt32(), c.GetProperty("ipv6").GetBoolean()));

    private NetnsAddressing A => new(RouteId, Table);

    public override string Kind => Codec.Kind;

    public override string Command =>
        $"ip -n {A.NamespacePath} link add {NetnsAddressing.PeerName} index {NetnsAddressing.PeerIndex} type veth peer name {A.HostName} netns 1"
        + $"; ip addr add {A.Host4}/30 dev {A.HostName}; ip -n NS addr add {A.Peer4}/30 dev {NetnsAddressing.PeerName}; ip -n NS route add default via {A.Host4}"
        + (Ipv6 ? $"; ip addr add {A.Host6}/64 dev {A.HostName} nodad; ip -n NS addr add {A.Peer6}/64 dev {NetnsAddressing.PeerName} nodad; ip -n NS -6 route add default via {A.Host6}" : "")
        + $"; {ForwardingCommand(1)}";

    public override string UndoCommand => $"{ForwardingCommand(0)}  # the pair goes with the namespace";

    private string ForwardingCommand(int value) =>
        $"sysctl net.ipv4.conf.{A.HostName}.forwarding={value}" + (Ipv6 ? $" net.ipv6.conf.{A.HostName}.force_forwarding={value}" : "");

    public override void Write(Utf8JsonWriter w)
    {
        w.WriteString("route", RouteId);
        w.WriteNumber("table", Table);
        w.WriteBoolean("ipv6", Ipv6);
    }

    public override void Apply(Host host)
    {
        var a = A;
        using (var home = SafeFd.Open("/proc/thread-self/ns/net", 0))
        {
            Namespaces.InNetwork(a.NamespacePath, () =>
            {
                using var inside = Rtnl.Open();
                try
                {
                    inside.AddVeth(NetnsAddressing.PeerName, a.HostName, $"via {RouteId}", NetnsAddressing.PeerIndex, home.Value);
                }
                catch (KernelException e) when (e.ErrorCode == Errno.EEXIST)
                {
                    // The pair of an earlier route on this table, whose namespace the kernel is still
                    // destroying (or that a crash left): ours by its name, under via's lock.
                    host.Rtnl.DeleteLink(a.HostName);
                    inside.AddVeth(NetnsAddressing.PeerName, a.HostName, $"via {RouteId}", NetnsAddressing.PeerIndex, home.Value);
                }
                inside.SetUp(1); // lo
                inside.AddAddress(NetnsAddressing.PeerIndex, a.Peer4, 30);
                if (Ipv6) inside.AddAddress(NetnsAddressing.PeerIndex, a.Peer6, 64);
                inside.SetUp(NetnsAddressing.PeerIndex);
                inside.Add(new Route(AddressFamily.InterNetwork, 254, Gateway: a.Host4, OutputLink: NetnsAddressing.PeerIndex));
                if (Ipv6) inside.Add(new Route(AddressFamily.InterNetworkV6, 254, Gateway: a.Host6, OutputLink: NetnsAddressing.PeerIndex));
                return 0;
            });
        }
        int index = host.Rtnl.Links().FirstOrDefault(l => l.Name == a.HostName)?.Index
            ?? throw new InvalidOperationException($"the veth {a.HostName} just made is not in via's namespace");
        host.Rtnl.AddAddress(index, a.Host4, 30);
        if (Ipv6) host.Rtnl.AddAddress(index, a.Host6, 64);
        Forwarding("1");
        host.Rtnl.SetUp(index);
    }

    public override bool Undo(Host host)
    {
        if (!Directory.Exists(Sysctl.Path($"net/ipv4/conf/{A.HostName}"))) return false; // gone already
        Forwarding("0");
        return true;
    }

    private void Forwarding(string value)
    {
        Sysctl.Write($"net/ipv4/conf/{A.HostName}/forwarding", value);
        if (Ipv6) Sysctl.Write($"net/ipv6/conf/{A.HostName}/force_forwarding", value);
    }
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
/// The netns mechanism's nftables table for one route (<c>table inet via_ROUTE</c>, swept by gc as every via
/// table: <see cref="Changes.NftTable.Sweep"/>), made in one transaction and deleted whole, over nfnetlink itself (<see cref="NftBatch"/>: libnftables cost a route 25-45 ms,
/// the kernel 1-9 ms). The forward chain: from the veth (<paramref name="HostName"/>), only out of
/// IFACE (<paramref name="Device"/>); where IFACE did not forward before (<paramref name="Guard4"/>,
/// <paramref name="Guard6"/>), only the replies of the namespace's connections come in from IFACE and
/// go on to a veth of via's. The postrouting chain: the namespace's addresses masqueraded to IFACE's.
/// </summary>
/// <param name="Peer6">The namespace's IPv6 address; null when IPv6 is not forwarded for the route.</param>
public sealed record NetnsTable(string Name, string HostName, string Device, IPAddress Peer4, IPAddress? Peer6, bool Guard4, bool Guard6) : HostChange
{
    public static readonly ChangeCodec Codec = new("netns-nft-table", c => new NetnsTable(JsonFields.Need(c, "name"), JsonFields.Need(c, "host"), JsonFields.Need(c, "device"),
        JsonFields.Ip(c, "peer4") ?? throw new InvalidDataException("netns-nft-table without peer4"), JsonFields.Ip(c, "peer6"),
        c.GetProperty("guard4").GetBoolean(), c.GetProperty("guard6").GetBoolean()));

    private const string Filter = "forward", Nat = "postrouting";

    public override string Kind => Codec.Kind;

    public override string Command => $"nft '{Definition}'";

    public override string UndoCommand => $"nft delete table inet {Name}";

    /// <summary>The table in nft's language (what <see cref="Apply"/> sends, as nft would list it).</summary>
    public string Definition
    {
        get
        {
            string veths = NetnsAddressing.HostPrefix + "*";
            var forward = new List<string> { $"iifname \"{HostName}\" oifname != \"{Device}\" drop" };
            if (Guard4) forward.Add($"meta nfproto ipv4 iifname \"{Device}\" oifname != \"{veths}\" drop; meta nfproto ipv4 iifname \"{Device}\" ct direction original drop");
            if (Guard6) forward.Add($"meta nfproto ipv6 iifname \"{Device}\" oifname != \"{veths}\" drop; meta nfproto ipv6 iifname \"{Device}\" ct direction original drop");
            var nat = new List<string> { $"oifname \"{Device}\" ip saddr {Peer4} masquerade" };
            if (Peer6 is not null) nat.Add($"oifname \"{Device}\" ip6 saddr {Peer6} masquerade");
            return $"table inet {Name} {{ chain {Filter} {{ type filter hook forward priority filter - 5; policy accept; {string.Join("; ", forward)}; }}; "
                + $"chain {Nat} {{ type nat hook postrouting priority srcnat; policy accept; {string.Join("; ", nat)}; }}; }}";
        }
    }

    public override void Write(Utf8JsonWriter w)
    {
        w.WriteString("name", Name);
        w.WriteString("host", HostName);
        w.WriteString("device", Device);
        JsonFields.Address(w, "peer4", Peer4);
        JsonFields.Address(w, "peer6", Peer6);
        w.WriteBoolean("guard4", Guard4);
        w.WriteBoolean("guard6", Guard6);
    }

    // 'add' then 'delete' first: a table of that name left by a crash is replaced, not merged into.
    public override void Apply(Host host)
    {
        var b = new NftBatch().AddTable(Name).DeleteTable(Name).AddTable(Name)
            .AddBaseChain(Name, Filter, "filter", NftHook.Forward, -5)
            .AddBaseChain(Name, Nat, "nat", NftHook.Postrouting, 100); // srcnat
        var iif = NftExpr.Meta(NftMetaKey.InputInterfaceName);
        var oif = NftExpr.Meta(NftMetaKey.OutputInterfaceName);
        byte[] veth = NftExpr.InterfaceName(HostName), device = NftExpr.InterfaceName(Device), veths = NftExpr.InterfaceName(NetnsAddressing.HostPrefix + "*");
        b.AddRule(Name, Filter, iif, NftExpr.Equal(veth), oif, NftExpr.NotEqual(device), NftExpr.Drop());
        foreach (var (guard, family) in new[] { (Guard4, Ipv4), (Guard6, Ipv6) })
        {
            if (!guard) continue;
            var nfproto = NftExpr.Meta(NftMetaKey.NetfilterProtocol);
            b.AddRule(Name, Filter, nfproto, NftExpr.Equal([family]), iif, NftExpr.Equal(device), oif, NftExpr.NotEqual(veths), NftExpr.Drop());
            b.AddRule(Name, Filter, nfproto, NftExpr.Equal([family]), iif, NftExpr.Equal(device), NftExpr.CtDirection(), NftExpr.Equal([0]), NftExpr.Drop()); // IP_CT_DIR_ORIGINAL
        }
        // ip saddr: 4 bytes at 12 of the IPv4 header; ip6 saddr: 16 at 8 of the IPv6 header
        b.AddRule(Name, Nat, oif, NftExpr.Equal(device), NftExpr.Meta(NftMetaKey.NetfilterProtocol), NftExpr.Equal([Ipv4]),
            NftExpr.NetworkHeader(12, 4), NftExpr.Equal(NftExpr.Address(Peer4)), NftExpr.Masquerade());
        if (Peer6 is not null)
            b.AddRule(Name, Nat, oif, NftExpr.Equal(device), NftExpr.Meta(NftMetaKey.NetfilterProtocol), NftExpr.Equal([Ipv6]),
                NftExpr.NetworkHeader(8, 16), NftExpr.Equal(NftExpr.Address(Peer6)), NftExpr.Masquerade());
        b.Commit($"nft table inet {Name}");
    }

    public override bool Undo(Host host) => Delete(Name);

    /// <summary><c>nft delete table inet NAME</c>, also when there is none ('add' first, in the same transaction).</summary>
    public static bool Delete(string name) => new NftBatch().AddTable(name).DeleteTable(name).Commit($"nft delete table inet {name}");

    private const byte Ipv4 = 2, Ipv6 = 10; // NFPROTO_IPV4, NFPROTO_IPV6
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
