using System.Net.Sockets;
using Via.Kernel.Cgroups;
using Via.Kernel.Netlink;
using Via.Mechanisms.Cgroup;

namespace Via.Mechanisms;

/// <summary>
/// A snapshot of what planning needs to know about the host: interfaces, addresses, routes and
/// rules of both families (all tables), where cgroup2 is mounted, and the route cgroups that exist
/// under via's subtree. Planning is a pure function of it.
/// </summary>
/// <param name="RouteCgroups">Names of the cgroups under via's subtree (t22000, ...): the cgroup tree
/// is one for the whole host, so a route of another network namespace or state directory holds its
/// name even where its rules and journal are not seen.</param>
/// <param name="FirewallMarks">Marks other programs set or match in nftables, where the ruleset can
/// be read (libnftables, root); empty otherwise, and until <see cref="WithFirewallMarks"/>.</param>
public sealed record HostView(
    IReadOnlyList<Link> Links,
    IReadOnlyList<InterfaceAddress> Addresses,
    IReadOnlyList<Route> Routes,
    IReadOnlyList<Rule> Rules,
    IReadOnlyList<string> Cgroup2Mounts,
    IReadOnlyCollection<string>? RouteCgroups = null,
    IReadOnlyList<FirewallMark>? FirewallMarks = null)
{
    public static HostView Read(Host host)
    {
        var mounts = Cgroup2.FindMounts();
        // Reading the host never mounts anything: where no cgroup2 is visible (ip netns exec), a detached read-only one.
        string? subtree = CgroupPaths.FindForReading() is { } root ? Path.Combine(root, Mechanisms.RouteCgroups.Subtree) : null;
        return new(
            host.Rtnl.Links(),
            host.Rtnl.Addresses(),
            [.. host.Rtnl.Routes(AddressFamily.InterNetwork), .. host.Rtnl.Routes(AddressFamily.InterNetworkV6)],
            [.. host.Rtnl.Rules(AddressFamily.InterNetwork), .. host.Rtnl.Rules(AddressFamily.InterNetworkV6)],
            mounts,
            subtree is not null && Directory.Exists(subtree) ? Directory.EnumerateDirectories(subtree).Select(d => Path.GetFileName(d)).ToList() : []);
    }

    /// <summary>
    /// This view with the marks of the nftables ruleset: read only where via chooses its mark mask
    /// (a new route, doctor), since listing the ruleset costs more than the rest of the view. Where
    /// the namespace has no nftables table at all (asked over nfnetlink, one dump), there is no
    /// ruleset to list, and libnftables is not loaded. via's own tables (inet via_t*) are not others'
    /// marks (the nft and netcls ones set marks within via's own mask; the netns ones none): with only
    /// those, a route made while another via route is up does not load it either.
    /// </summary>
    public HostView WithFirewallMarks() => this with
    {
        FirewallMarks = Kernel.Nftables.NftablesTables.Any(ViasOwn) == false ? [] : Mechanisms.FirewallMarks.Parse(Kernel.Nftables.NftablesRuleset.ListJson()),
    };

    private static bool ViasOwn(byte family, string table) =>
        family == Kernel.Nftables.NftBatch.Inet && table.StartsWith(Changes.NftTable.Prefix + "t", StringComparison.Ordinal);
}
