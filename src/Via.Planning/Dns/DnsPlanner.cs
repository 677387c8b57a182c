using System.Net;
using System.Net.Sockets;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Dns;

namespace Via.Planning.Dns;

/// <summary>
/// How the program resolves names (DESIGN.md point 7).
/// </summary>
/// <param name="Servers">With <see cref="Private"/>: the servers it asks, through its route.</param>
/// <param name="Origin">Where the servers, or the choice to keep the host's resolver, came from (for --dry-run and --verbose).</param>
/// <param name="Warning">Said once on stderr: the host's resolver would send the program's lookups by the default route, or cannot be reached through the route.</param>
/// <param name="Private">The program's own resolver files, or null to keep the host's.</param>
public sealed record DnsPlan(IReadOnlyList<IPAddress> Servers, string Origin, string? Warning, PrivateResolver? Private)
{
    public bool KeepsHost => Private is null;

    /// <summary>One line for --dry-run.</summary>
    public string Describe() => Private is null
        ? $"the host's resolver, unchanged ({Origin})"
        : $"{string.Join(", ", Servers)} ({Origin}), through the route; private /etc/resolv.conf{(Private.NsSwitch is null ? "" : " and /etc/nsswitch.conf")}{(Private.NscdDirectory is null ? "" : ", nscd hidden")}";
}

/// <summary>--dns + the host's resolver files + the route -> <see cref="DnsPlan"/>. Pure.</summary>
public static class DnsPlanner
{
    private const string Fix = "pass --dns ADDRESS (or --dns host to keep it)";

    /// <param name="only">The route carries only some destinations (--only): by default the program's lookups
    /// then keep the host's resolver and its path, unless --dns names servers (see <see cref="Through"/>).</param>
    public static DnsPlan Decide(DnsRequest request, HostResolver host, ResolvedRoute route, HostView view, DateTimeOffset now, bool only = false)
    {
        string dev = route.Link.Name;
        if (only && request.Kind == DnsRequest.Choice.Default)
            return new DnsPlan(ResolvConf.Nameservers(host.ResolvConf ?? ""), "--only: the host's, by the default path", null, null);
        switch (request.Kind)
        {
            case DnsRequest.Choice.Host:
                return new DnsPlan(ResolvConf.Nameservers(host.ResolvConf ?? ""), "--dns host", null, null);
            case DnsRequest.Choice.Servers:
                if (host.ResolvConf is null) throw new PlanException(MissingResolvConf(host));
                return Private(request.Servers, "--dns", host, dev);
        }

        if (LinkServers(host, route.Link.Name, now) is ({ Count: > 0 } servers, string origin) && host.ResolvConf is not null)
            return Private(servers.Take(DnsRequest.MaxServers).ToList(), $"{dev}'s own servers, from {origin}", host, dev);
        return new DnsPlan(ResolvConf.Nameservers(host.ResolvConf ?? ""), "the host's", Warn(host, route, view), null);
    }

    /// <summary>
    /// The route as it must be for <paramref name="dns"/>: with --only and --dns servers, the servers
    /// (udp and tcp port 53) join the destinations that take the route, so that the program's queries
    /// go through it like the rest of its matching traffic. Otherwise the route as asked.
    /// </summary>
    public static RouteRequest Through(RouteRequest route, DnsRequest dns) =>
        route.Only is { } only && dns.Kind == DnsRequest.Choice.Servers
            ? route with { Only = only.With(dns.Servers.SelectMany(ServerFilters)) }
            : route;

    private static IEnumerable<DestinationFilter> ServerFilters(IPAddress server)
    {
        byte length = (byte)(server.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
        yield return new DestinationFilter(server, length, new DestinationPort("udp", 53, 53));
        yield return new DestinationFilter(server, length, new DestinationPort("tcp", 53, 53));
    }

    /// <summary>The interface's own servers from the first state file that names some, and that file.</summary>
    public static (IReadOnlyList<IPAddress> Servers, string Origin) LinkServers(HostResolver host, string iface, DateTimeOffset now)
    {
        foreach (var f in host.LinkFiles)
        {
            var servers = f.Format == LinkDnsFormat.Dhclient ? LinkDnsText.Dhclient(f.Text, iface, now) : LinkDnsText.KeyValue(f.Text);
            if (servers.Count > 0) return (servers, f.Path);
        }
        return ([], "");
    }

    /// <summary>Why the host's resolver would not serve the program through its route, or null. The first reason found: one line is enough to act on.</summary>
    public static string? Warn(HostResolver host, ResolvedRoute route, HostView view)
    {
        string dev = route.Link.Name;
        if (host.NscdRunning)
            return $"DNS: nscd ({host.NscdDirectory}/socket) answers the program's lookups and sends its queries by the default route, not through {dev}; {Fix}";
        var modules = host.NsSwitch is null ? [] : NsSwitch.HostsModules(host.NsSwitch);
        string? daemon = modules.TakeWhile(m => m != "dns").FirstOrDefault(m => !NsSwitch.InProcess.Contains(m));
        string file = host.ResolvConfLink is { } l ? $"/etc/resolv.conf (-> {l})" : "/etc/resolv.conf";
        foreach (var server in ResolvConf.Nameservers(host.ResolvConf ?? ""))
        {
            if (IPAddress.IsLoopback(server))
                return $"DNS: {file} names {server}, a local stub that sends queries by the default route, not through {dev}; {Fix}";
            if (view.Addresses.Any(a => a.Local.Equals(server)))
                return $"DNS: {file} names {server}, this host's own address: a local resolver that sends queries by its own route, not through {dev}; {Fix}";
            if (route.Link.IsPointToPoint || OnLink(view, route.Link.Index, server)) continue;
            if (view.Links.FirstOrDefault(k => k.Index != route.Link.Index && !k.IsLoopback && OnLink(view, k.Index, server)) is { } other)
                return $"DNS: {file} names {server}, on {other.Name}'s network, which {dev}'s route does not reach: lookups will fail; {Fix}";
        }
        if (daemon == "resolve")
            return $"DNS: /etc/nsswitch.conf hands lookups to systemd-resolved (hosts: ... resolve), which sends them by the default route, not through {dev}; {Fix}";
        if (daemon is not null)
            return $"DNS: /etc/nsswitch.conf hands lookups to '{daemon}' before dns, a daemon that sends them by its own route, not through {dev}; {Fix}";
        return null;
    }

    private static DnsPlan Private(IReadOnlyList<IPAddress> servers, string origin, HostResolver host, string dev) =>
        new(servers, origin, null, new PrivateResolver(
            ResolvConf.Private(servers, host.ResolvConf, $"{origin}, through {dev}"),
            host.NsSwitch is { } ns ? NsSwitch.Private(ns) : null,
            host.NscdDirectory));

    private static string MissingResolvConf(HostResolver host) => host.ResolvConfLink is { } link
        ? $"/etc/resolv.conf points to {link}, which does not exist, so there is nothing to put the program's own resolver configuration over; start the resolver that writes it, or make /etc/resolv.conf a file"
        : "/etc/resolv.conf does not exist, so there is nothing to put the program's own resolver configuration over; create it (even empty)";

    /// <summary>Whether <paramref name="address"/> is inside a subnet of an address of link <paramref name="index"/>.</summary>
    private static bool OnLink(HostView view, int index, IPAddress address) =>
        view.Addresses.Any(a => a.LinkIndex == index && a.Family == address.AddressFamily && a.Scope != InterfaceAddress.ScopeHost && InPrefix(address, a.Local, a.PrefixLength));

    private static bool InPrefix(IPAddress address, IPAddress network, int length)
    {
        byte[] x = address.GetAddressBytes(), y = network.GetAddressBytes();
        if (x.Length != y.Length) return false;
        for (int i = 0; i < x.Length && length > 0; i++, length -= 8)
        {
            int mask = length >= 8 ? 0xff : (0xff << (8 - length)) & 0xff;
            if ((x[i] & mask) != (y[i] & mask)) return false;
        }
        return true;
    }
}
