using System.Net;
using System.Net.Sockets;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Netns;

namespace Via.Planning;

/// <summary>
/// <c>--ip</c> checked against IFACE as the host shows it (pure): IFACE must be Ethernet (a macvlan
/// needs MAC addresses: not WireGuard, tun or PPP), each address free (not the host's, not another
/// route's), its prefix IFACE's on-link one where none was given, and the gateway of its family the
/// one the route takes out of IFACE (<see cref="ResolvedRoute"/>: its table, the main table, --gateway),
/// which must be on-link. Every refusal is a <see cref="PlanException"/>: nothing has changed yet.
/// </summary>
public static class DirectPlanner
{
    /// <summary>The attachment the mechanism makes; <paramref name="say"/> gets what --verbose shows (a family without a gateway).</summary>
    public static DirectAttachment Plan(DirectAttachment asked, ResolvedRoute route, HostView host, IEnumerable<ActiveRoute> others, Action<string>? say = null)
    {
        var link = route.Link;
        ushort type = host.Links.FirstOrDefault(l => l.Index == link.Index)?.Type ?? link.Type;
        if (type != Link.ArphrdEther)
            throw new PlanException($"--ip needs an Ethernet interface, and {link.Name} is not (link type {type}: WireGuard, tun and PPP devices carry no MAC addresses for a macvlan); "
                + $"without --ip, --method netns routes through {link.Name} with NAT");
        var taken = CreateMacvlan.Taken(others).ToList();
        HostAddress? v4 = asked.V4 is null ? null : Complete(asked.V4, route, host, taken);
        HostAddress? v6 = asked.V6 is null ? null : Complete(asked.V6, route, host, taken);
        var gateway4 = v4 is null ? null : Gateway(v4, route.Gateway4, link.Name, say);
        var gateway6 = v6 is null ? null : Gateway(v6, route.Gateway6, link.Name, say);
        return new DirectAttachment(v4, v6, gateway4, gateway6);
    }

    private static HostAddress Complete(HostAddress a, ResolvedRoute route, HostView host, List<(string Route, IPAddress Address)> taken)
    {
        if (host.Addresses.FirstOrDefault(h => h.Local.Equals(a.Address)) is { } mine)
            throw new PlanException($"--ip {a}: {a.Address} is already an address of this host ({host.Links.FirstOrDefault(l => l.Index == mine.LinkIndex)?.Name ?? $"ifindex {mine.LinkIndex}"}); give the program a free address of {route.Link.Name}'s network");
        if (taken.FirstOrDefault(t => t.Address.Equals(a.Address)) is { Route: not null } other)
            throw new PlanException($"--ip {a}: {a.Address} is already the address of via route {other.Route}; give each route an address of its own");
        if (a.PrefixLength is not null) return a;
        // No prefix: the longest on-link prefix of IFACE that holds the address (as firejail takes IFACE's mask).
        var onLink = route.Connected.Concat(host.Routes.Where(r => r.OutputLink == route.Link.Index && r.Gateway is null && r.Type == RouteType.Unicast && !r.IsDefault))
            .Where(r => r.Family == a.Family && r.Destination is not null && HostAddress.SamePrefix(r.Destination, a.Address, r.DestinationLength))
            .OrderByDescending(r => r.DestinationLength).FirstOrDefault();
        return onLink is null
            ? throw new PlanException($"--ip {a}: {route.Link.Name} has no on-link prefix that holds {a.Address}; give its prefix length (--ip {a.Address}/{(a.Is6 ? 64 : 24)})")
            : a with { PrefixLength = onLink.DestinationLength };
    }

    private static IPAddress? Gateway(HostAddress a, IPAddress? gateway, string device, Action<string>? say)
    {
        string family = a.Is6 ? "IPv6" : "IPv4";
        if (gateway is null)
        {
            say?.Invoke($"--ip {a}: {device} has no {family} gateway: the program reaches only {a.Address}'s on-link prefix (pass --gateway for more)");
            return null;
        }
        // An IPv6 router is usually named by its link-local address: on-link on any link of the segment.
        if (!(gateway.AddressFamily == AddressFamily.InterNetworkV6 && gateway.IsIPv6LinkLocal) && !a.Contains(gateway))
            throw new PlanException($"--ip {a}: {device}'s {family} gateway {gateway} is not in its prefix; give an address of the gateway's network (or --gateway)");
        return gateway;
    }
}
