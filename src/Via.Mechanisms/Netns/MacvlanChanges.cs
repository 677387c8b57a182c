using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Via.Kernel;
using Via.Kernel.Netlink;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Netns;

/// <summary>
/// The netns mechanism's direct attachment (<c>--ip</c>, as firejail's): a macvlan in bridge mode on
/// IFACE, born in the route's namespace as <c>via0</c> at index 86 (where the egress guard looks),
/// tagged with the alias <c>via ROUTE</c>, with the given addresses (without DAD, announced by a
/// gratuitous ARP and an unsolicited NA), the on-link prefixes the kernel adds with them, and a
/// default route through IFACE's gateway of each family where it has one. No veth, no NAT, no forwarding: the program's packets leave IFACE's port with
/// the macvlan's own MAC and address. Router advertisements are not accepted in the namespace, so
/// the program's IPv6 addresses and routes are these and no others.
/// <para>Undone by deleting via0 in the namespace (at once: the address is free on the LAN when
/// via returns); deleting the namespace would delete it too. Nothing of it is on the host's side.</para>
/// </summary>
public sealed record CreateMacvlan(string RouteId, string Device, DirectAttachment Attachment) : HostChange
{
    public static readonly ChangeCodec Codec = new("macvlan", c => new CreateMacvlan(JsonFields.Need(c, "route"), JsonFields.Need(c, "device"),
        new DirectAttachment(Address(c, "ipv4"), Address(c, "ipv6"), JsonFields.Ip(c, "gateway4"), JsonFields.Ip(c, "gateway6"))));

    private string Namespace => new NetnsAddressing(RouteId, 0).NamespacePath;

    public override string Kind => Codec.Kind;

    public override string Command =>
        $"ip -n NS link set lo up; sysctl -w net.ipv4.conf.default.arp_notify=1 net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.default.autoconf=0 net.ipv6.conf.default.ndisc_notify=1 (in NS)"
        + $"; ip link add link {Device} name {NetnsAddressing.PeerName} index {NetnsAddressing.PeerIndex} netns {Namespace} alias 'via {RouteId}' type macvlan mode bridge"
        + string.Concat(Attachment.Addresses.Select(a => $"; ip -n NS addr add {a} dev {NetnsAddressing.PeerName}{(a.Is6 ? " nodad" : "")}"))
        + $"; ip -n NS link set {NetnsAddressing.PeerName} up"
        + (Attachment.Gateway4 is { } g4 ? $"; ip -n NS route add default via {g4} dev {NetnsAddressing.PeerName}" : "")
        + (Attachment.Gateway6 is { } g6 ? $"; ip -n NS -6 route add default via {g6} dev {NetnsAddressing.PeerName}" : "");

    public override string UndoCommand => $"ip -n {Namespace} link del {NetnsAddressing.PeerName}";

    public override void Write(Utf8JsonWriter w)
    {
        w.WriteString("route", RouteId);
        w.WriteString("device", Device);
        if (Attachment.V4 is { } v4) w.WriteString("ipv4", v4.ToString());
        if (Attachment.V6 is { } v6) w.WriteString("ipv6", v6.ToString());
        JsonFields.Address(w, "gateway4", Attachment.Gateway4);
        JsonFields.Address(w, "gateway6", Attachment.Gateway6);
    }

    public override void Apply(Host host)
    {
        int lower = host.Rtnl.Links().FirstOrDefault(l => l.Name == Device)?.Index
            ?? throw new InvalidOperationException($"interface {Device} is not on the host any more");
        string ns = Namespace;
        Namespaces.InNetwork(ns, () =>
        {
            // The namespace is via's: its defaults are ours to set, before the link that takes them
            // exists. arp_notify and ndisc_notify: when the link comes up, it announces its addresses
            // (a gratuitous ARP, an unsolicited NA), so that the neighbours that knew them at another
            // MAC address (the macvlan of the program's last run: a new one has a new MAC) take this
            // one at once instead of sending to the old one until their entry goes stale.
            Sysctl.Write("net/ipv4/conf/default/arp_notify", "1");
            if (File.Exists(Sysctl.Path("net/ipv6/conf/default/accept_ra"))) // a kernel booted without IPv6 has none
            {
                Sysctl.Write("net/ipv6/conf/default/accept_ra", "0");
                Sysctl.Write("net/ipv6/conf/default/autoconf", "0");
                Sysctl.Write("net/ipv6/conf/default/ndisc_notify", "1");
            }
            using var inside = Rtnl.Open();
            inside.SetUp(1); // lo
            return 0;
        });
        using (var fd = SafeFd.Open(ns, 0))
            host.Rtnl.AddMacvlan(NetnsAddressing.PeerName, lower, $"via {RouteId}", fd.Value, NetnsAddressing.PeerIndex);
        Namespaces.InNetwork(ns, () =>
        {
            using var inside = Rtnl.Open();
            // The addresses, then up (which announces them, see above), then the routes, whose
            // gateways must be on-link when they are added. (Without DAD, an IPv6 address is not
            // tentative when the link comes up, so it is announced, and its prefix route is there.)
            foreach (var a in Attachment.Addresses)
                inside.AddAddress(NetnsAddressing.PeerIndex, a.Address, a.PrefixLength ?? throw new InvalidOperationException($"--ip {a} was not planned (no prefix length)"));
            inside.SetUp(NetnsAddressing.PeerIndex);
            if (Attachment.Gateway4 is { } g4) inside.Add(new Route(AddressFamily.InterNetwork, 254, Gateway: g4, OutputLink: NetnsAddressing.PeerIndex));
            if (Attachment.Gateway6 is { } g6) inside.Add(new Route(AddressFamily.InterNetworkV6, 254, Gateway: g6, OutputLink: NetnsAddressing.PeerIndex));
            return 0;
        });
    }

    /// <summary>Deletes via0 in the namespace; false when the namespace or the link is gone already (idempotent).</summary>
    public override bool Undo(Host host)
    {
        string ns = Namespace;
        if (!File.Exists(ns)) return false;
        try
        {
            return Namespaces.InNetwork(ns, () =>
            {
                using var inside = Rtnl.Open();
                return inside.DeleteLink(NetnsAddressing.PeerName);
            });
        }
        catch (KernelException e) when (e.ErrorCode == Errno.EINVAL)
        {
            return false; // the file is not a namespace: killed between the file and its bind mount
        }
    }

    /// <summary>The addresses of other routes' macvlans (for a refusal: one address, one route).</summary>
    public static IEnumerable<(string Route, IPAddress Address)> Taken(IEnumerable<ActiveRoute> routes) =>
        routes.SelectMany(r => r.Changes.OfType<CreateMacvlan>().SelectMany(m => m.Attachment.Addresses.Select(a => (r.Id, a.Address))));

    private static HostAddress? Address(JsonElement c, string name) =>
        JsonFields.Str(c, name) is { } s ? HostAddress.Parse(s, out string? error) ?? throw new JsonException($"'{name}': {error}") : null;
}
