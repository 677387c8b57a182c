using System.Globalization;
using System.Net;

namespace Via.Mechanisms.Netns;

/// <summary>
/// The names and addresses of one route's namespace, all derived from its table number, so that a
/// plan names them before they exist and two routes never share one.
/// <list type="bullet">
/// <item>The namespace: a file under via's state directory (<c>netns/ROUTE</c>), held by a bind
/// mount as <c>ip netns add</c> holds its own under /run/netns; via's by where it lives.</item>
/// <item>The veth pair: <c>via-tNNNNN</c> on the host (via's by its name and its alias), <c>via0</c>
/// in the namespace, at index <see cref="PeerIndex"/>, so the egress guard can name it in advance.</item>
/// <item>IPv4: a /30 out of 169.254.64.0/18: link-local, so no host's or LAN's prefix is taken
/// (169.254.169.254, the cloud metadata address, lies outside it), and it is never routed on
/// anyway: its packets are masqueraded to IFACE's address. IPv6: a /64 of the ULA fd76:6961::/48
/// ("vi"), masqueraded likewise.</item>
/// </list>
/// </summary>
public sealed record NetnsAddressing(string RouteId, uint Table)
{
    /// <summary>The namespace end's index: above the few a new namespace gets by itself (lo is 1, the
    /// fallback tunnels sit0, ip6tnl0, gre0... come next when their modules are loaded), and via's protocol number.</summary>
    public const int PeerIndex = 86;

    public const string PeerName = "via0";

    /// <summary>The prefix of every host-side veth via makes.</summary>
    public const string HostPrefix = "via-t";

    private uint Slot => Table % 4096;

    public string NamespacePath => Path.Combine(Journal.StateDirectory, "netns", RouteId);

    public string HostName => HostPrefix + Table.ToString(CultureInfo.InvariantCulture);

    public string TableName => Changes.NftTable.Of(RouteId);

    public IPAddress Host4 => V4(1);

    public IPAddress Peer4 => V4(2);

    public IPAddress Host6 => IPAddress.Parse($"fd76:6961:0:{Slot:x}::1");

    public IPAddress Peer6 => IPAddress.Parse($"fd76:6961:0:{Slot:x}::2");

    private IPAddress V4(uint host)
    {
        uint a = (169u << 24) | (254u << 16) | (64u << 8) + (Slot << 2) + host;
        return new IPAddress([(byte)(a >> 24), (byte)(a >> 16), (byte)(a >> 8), (byte)a]);
    }
}
