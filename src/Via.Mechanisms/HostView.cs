using System.Net.Sockets;
using Via.Kernel.Cgroups;
using Via.Kernel.Netlink;

namespace Via.Mechanisms;

/// <summary>
/// A snapshot of what planning needs to know about the host: interfaces, addresses, routes and
/// rules of both families (all tables), and where cgroup2 is mounted. Planning is a pure function of it.
/// </summary>
public sealed record HostView(
    IReadOnlyList<Link> Links,
    IReadOnlyList<InterfaceAddress> Addresses,
    IReadOnlyList<Route> Routes,
    IReadOnlyList<Rule> Rules,
    IReadOnlyList<string> Cgroup2Mounts)
{
    public static HostView Read(Host host) => new(
        host.Rtnl.Links(),
        host.Rtnl.Addresses(),
        [.. host.Rtnl.Routes(AddressFamily.InterNetwork), .. host.Rtnl.Routes(AddressFamily.InterNetworkV6)],
        [.. host.Rtnl.Rules(AddressFamily.InterNetwork), .. host.Rtnl.Rules(AddressFamily.InterNetworkV6)],
        Cgroup2.FindMounts());
}
