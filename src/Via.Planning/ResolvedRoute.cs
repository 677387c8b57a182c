using System.Net;
using System.Net.Sockets;
using Via.Kernel.Netlink;
using Via.Mechanisms;

namespace Via.Planning;

/// <summary>A route request checked against the host: the interface, and per family the gateway and source.</summary>
/// <param name="Gateway4">IPv4 next hop; null when IPv4 goes straight out a point-to-point link or is unroutable.</param>
/// <param name="Source4">IPv4 source address; null when the interface has none (IPv4 is then unreachable for the program).</param>
/// <param name="Connected">The interface's on-link prefixes, copied into the route's table.</param>
public sealed record ResolvedRoute(
    Link Link,
    IPAddress? Gateway4,
    IPAddress? Source4,
    IPAddress? Gateway6,
    IPAddress? Source6,
    IReadOnlyList<Route> Connected)
{
    public bool Routes4 => Source4 is not null && (Gateway4 is not null || Link.IsPointToPoint);
    public bool Routes6 => Source6 is not null && (Gateway6 is not null || Link.IsPointToPoint);
}

/// <summary>Checks a <see cref="RouteRequest"/> against a <see cref="HostView"/> (pure).</summary>
public static class RouteResolver
{
    private const uint MainTable = 254;

    public static ResolvedRoute Resolve(RouteRequest request, HostView host)
    {
        string dev = request.Device;
        var link = host.Links.FirstOrDefault(l => l.Name == dev)
            ?? throw new PlanException($"interface '{dev}' does not exist; 'ip link' lists this host's interfaces ({string.Join(", ", host.Links.Where(l => !l.IsLoopback).Select(l => l.Name))})");
        if (link.IsLoopback)
            throw new PlanException($"interface '{dev}' is the loopback interface; choose an interface that leaves the host");
        if (!link.IsUp)
            throw new PlanException($"interface '{dev}' is down; bring it up with 'ip link set {dev} up' and try again");

        var addresses = host.Addresses.Where(a => a.LinkIndex == link.Index).ToList();
        var global = addresses.Where(a => a.Scope == InterfaceAddress.ScopeUniverse).ToList();
        if (global.Count == 0)
            throw new PlanException($"interface '{dev}' has no address; give it one ('ip addr add ADDR/LEN dev {dev}') or wait for DHCP, then try again");

        IPAddress? source4 = global.FirstOrDefault(a => a.Family == AddressFamily.InterNetwork)?.Local;
        IPAddress? source6 = global.FirstOrDefault(a => a.Family == AddressFamily.InterNetworkV6)?.Local;
        if (request.Source is { } src)
        {
            if (!addresses.Any(a => a.Local.Equals(src)))
                throw new PlanException($"{src} is not an address of '{dev}' (it has {string.Join(", ", addresses.Select(a => a.Local))}); pass one of those to --src, or leave --src out");
            if (src.AddressFamily == AddressFamily.InterNetwork) source4 = src; else source6 = src;
        }

        IPAddress? gateway4 = null, gateway6 = null;
        if (request.Gateway is { } gw)
        {
            var family = gw.AddressFamily;
            if (family == AddressFamily.InterNetwork && source4 is null)
                throw new PlanException($"gateway {gw} is IPv4 but '{dev}' has no IPv4 address; give '{dev}' one, or pass its IPv6 gateway");
            if (family == AddressFamily.InterNetworkV6 && source6 is null)
                throw new PlanException($"gateway {gw} is IPv6 but '{dev}' has no global IPv6 address; pass its IPv4 gateway instead");
            // On a point-to-point link the far end (the address's peer) is a valid next hop too.
            if (family == AddressFamily.InterNetwork && !global.Any(a => a.Family == family && (OnLink(a, gw) || gw.Equals(a.Peer))))
                throw new PlanException($"gateway {gw} is not on a subnet of '{dev}' ({string.Join(", ", global.Where(a => a.Family == family).Select(a => $"{a.Local}/{a.PrefixLength}"))}); pass a gateway on that link");
            if (family == AddressFamily.InterNetwork) gateway4 = gw; else gateway6 = gw;
        }
        gateway4 ??= source4 is null ? null : FindGateway(host, link, AddressFamily.InterNetwork);
        gateway6 ??= source6 is null ? null : FindGateway(host, link, AddressFamily.InterNetworkV6);

        if (source4 is not null && gateway4 is null && !link.IsPointToPoint)
            throw new PlanException($"no IPv4 gateway found for '{dev}': no default route through it in any table, and it is not point-to-point; pass --gateway ADDRESS");
        if (source4 is null && gateway6 is null && !link.IsPointToPoint)
            throw new PlanException($"no gateway found for '{dev}': it has no IPv4 address and no IPv6 default route in any table; pass --gateway ADDRESS");

        var connected = host.Routes.Where(r => r.Table == MainTable && r.OutputLink == link.Index && r.Gateway is null
            && r.DestinationLength > 0 && r.Type == RouteType.Unicast).ToList();
        return new ResolvedRoute(link, gateway4, source4, gateway6, source6, connected);
    }

    /// <summary>The next hop of a default route through the link, in any table (DESIGN.md point 8); main table first.</summary>
    private static IPAddress? FindGateway(HostView host, Link link, AddressFamily family) =>
        host.Routes
            .Where(r => r.Family == family && r.IsDefault && r.Type == RouteType.Unicast && r.OutputLink == link.Index && r.Gateway is not null)
            .OrderBy(r => r.Table == MainTable ? 0 : 1).ThenBy(r => r.Metric)
            .Select(r => r.Gateway)
            .FirstOrDefault();

    private static bool OnLink(InterfaceAddress a, IPAddress candidate)
    {
        byte[] x = a.Local.GetAddressBytes(), y = candidate.GetAddressBytes();
        if (x.Length != y.Length) return false;
        int bits = a.PrefixLength;
        for (int i = 0; i < x.Length && bits > 0; i++, bits -= 8)
        {
            int mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
            if ((x[i] & mask) != (y[i] & mask)) return false;
        }
        return true;
    }
}
