using System.Net.Sockets;
using Via.Kernel.Processes;
using Via.Kernel;
using Via.Kernel.Netlink;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Netns;

/// <summary>
/// The program in a network namespace of its own, linked to the host by a veth pair, its packets
/// forwarded out of IFACE with NAT to IFACE's address (what <c>ip netns exec</c> with a veth and a
/// masquerade rule does by hand, made fail-closed and undone):
/// <list type="bullet">
/// <item>The namespace, the veth pair and the nft table (<c>inet via_ROUTE</c>) are via's: named for
/// the route, journaled before they are made, undone with the route, swept by <c>via gc</c>.</item>
/// <item>Routing: the namespace's packets arrive on the host end of the veth and are forwarded; an
/// <c>iif via-tN</c> rule sends them to the route's table, with its unreachable defaults (the kill
/// switch: IFACE down, they get an ICMP error, never the main table). The nft table's forward
/// chain is the forwarded packets' egress guard: from the veth, only out of IFACE (a deleted rule
/// sends them to the main table, and the chain drops them there). Masquerade to IFACE's address.</item>
/// <item>Forwarding: on the veth (ours) and on IFACE, per interface (<see cref="InterfaceForwarding"/>);
/// never the global switches. IPv6 needs <c>force_forwarding</c> (Linux 6.17): without it the
/// namespace gets no IPv6 route (fails closed).</item>
/// <item>The program's own sockets live in the namespace, where IFACE does not exist: the engine's
/// egress guard on the route's cgroup passes the namespace's end of the veth (and lo).</item>
/// <item>With <c>--ip</c> (<see cref="TagRequest.Direct"/>), none of the above but the namespace: a
/// macvlan on IFACE takes the veth's place and name (<see cref="CreateMacvlan"/>), with the program's
/// own addresses on IFACE's network and no NAT.</item>
/// </list>
/// </summary>
public sealed class NetnsMechanism : IMechanism
{
    public string Name => "netns";

    public string Summary => "the program in a network namespace of its own, linked by a veth pair and forwarded out of IFACE with NAT to its address; with --ip, on a macvlan of IFACE with an address of its own";

    /// <summary>No: the program's packets get IFACE's address by NAT (masquerade) in via's nft table.</summary>
    public bool TagsAtCreation => false;

    /// <summary>No: the namespace itself confines the program (inside, only lo and via0 exist) and the nft
    /// forward chain guards its forwarded packets; the cgroup egress guard is a backstop where the host allows it.</summary>
    public bool NeedsCgroupBpf => false;

    public MechanismProbe Probe(HostView host)
    {
        if (!File.Exists("/proc/self/ns/net")) return new MechanismProbe(false, "this kernel has no network namespaces (CONFIG_NET_NS)");
        // nf_tables, asked over nfnetlink (no tables is an answer; null is none): needs CAP_NET_ADMIN, so only root's probe can tell.
        if (Exec.IsRoot && Kernel.Nftables.NftablesTables.Any() is null)
            return new MechanismProbe(false, "nftables (nf_tables) is not available in this kernel; the NAT is made with it");
        return new MechanismProbe(true, $"network namespaces, veth, nftables NAT; IPv6 {(Ipv6Forwardable("lo") ? "forwarded per interface (force_forwarding)" : "not forwarded (no force_forwarding before Linux 6.17): unreachable in the namespace")}");
    }

    /// <summary>Yes: <c>--ip</c> gives the namespace a macvlan on IFACE instead of the veth pair (<see cref="CreateMacvlan"/>).</summary>
    public bool AttachesDirectly => true;

    /// <summary>Every packet of the namespace leaves by its link to the host and is forwarded through the route: --only cannot leave some on the default path.</summary>
    public bool FiltersDestinations => false;

    public (int Index, string Name)? GuardDevice(TagRequest request) => (NetnsAddressing.PeerIndex, NetnsAddressing.PeerName);

    public IReadOnlyList<HostChange> Tag(TagRequest request)
    {
        var a = new NetnsAddressing(request.RouteId, request.Table);
        string device = request.Host.Links.FirstOrDefault(l => l.Index == request.DeviceIndex)?.Name
            ?? throw new InvalidOperationException($"interface index {request.DeviceIndex} is not on the host");
        // --ip: the namespace and a macvlan on IFACE, nothing on the host's side (no veth, no NAT, no forwarding).
        if (request.Direct is { } direct)
            return [new CreateNetworkNamespace(a.NamespacePath), new CreateMacvlan(request.RouteId, device, direct)];
        bool ipv6 = Ipv6Forwardable(device);
        // The values from before the first netns route on IFACE: a later route inherits them from the
        // journals (under via's lock), so that the last one to leave restores what the host had.
        var earlier = InterfaceForwarding.Others(request.RouteId, device).FirstOrDefault();
        string v4Before = earlier?.Ipv4Before ?? Sysctl.Read($"net/ipv4/conf/{device}/forwarding") ?? "0";
        string? v6Before = !ipv6 ? null : earlier?.Ipv6Before ?? Sysctl.Read($"net/ipv6/conf/{device}/force_forwarding") ?? "0";
        bool v6Global = Sysctl.Read("net/ipv6/conf/all/forwarding") == "1";

        // The forward chain (NetnsTable): from the veth, only out of IFACE. Where IFACE did not forward
        // before, only the replies of the namespace's connections come in from IFACE and go on to a veth of via's.
        var firewall = new NetnsTable(a.TableName, a.HostName, device, a.Peer4, ipv6 ? a.Peer6 : null, Guard4: v4Before == "0", Guard6: ipv6 && v6Before == "0" && !v6Global);

        const byte proto = 86; // Planner.Protocol (Planning sits above Mechanisms)
        var rules = new List<HostChange>
        {
            new ForwardRule(new Rule(AddressFamily.InterNetwork, request.Priority, request.Table, Protocol: proto, InputInterface: a.HostName)),
            new ForwardRule(new Rule(AddressFamily.InterNetwork, request.Priority, request.Table, Source: a.Peer4, SourceLength: 32, Protocol: proto)),
        };
        if (ipv6)
            rules.Add(new ForwardRule(new Rule(AddressFamily.InterNetworkV6, request.Priority, request.Table, Protocol: proto, InputInterface: a.HostName)));

        return
        [
            new CreateNetworkNamespace(a.NamespacePath),
            // Before anything can be forwarded: the guard and the NAT, then the pair, then forwarding on IFACE.
            firewall,
            .. rules,
            new CreateVethPair(request.RouteId, request.Table, ipv6),
            new InterfaceForwarding(request.RouteId, device, v4Before, v6Before),
        ];
    }

    public LaunchAdditions Launch(TagRequest request) =>
        new(new Dictionary<string, string>(), NetworkNamespace: new NetnsAddressing(request.RouteId, request.Table).NamespacePath);

    public IReadOnlyList<ChangeCodec> ChangeKinds => [CreateNetworkNamespace.Codec, CreateVethPair.Codec, InterfaceForwarding.Codec, NetnsTable.Codec, ForwardRule.Codec, CreateMacvlan.Codec];

    /// <summary>
    /// Namespaces under via's state directory and veths named via-t* that no journal names (a wiped
    /// state directory): removed. A veth of a route of another state directory is not ours to judge
    /// unless this is the default one. (Its nft tables: <see cref="Changes.NftTable.Sweep"/>, as every via table.)
    /// </summary>
    public IEnumerable<Collector.Removal> Sweep(IReadOnlyList<ActiveRoute> known, bool dryRun)
    {
        var changes = known.SelectMany(r => r.Changes).ToList();
        var namespaces = changes.OfType<CreateNetworkNamespace>().Select(c => c.Path).ToHashSet(StringComparer.Ordinal);
        string dir = Path.Combine(Journal.StateDirectory, "netns");
        if (Directory.Exists(dir))
            foreach (var file in Directory.EnumerateFiles(dir).Where(f => !namespaces.Contains(f)).ToList())
                yield return Remove($"network namespace {file}", dryRun, () => Namespaces.RemoveNetwork(file));
        if (!Journal.OwnsCgroupSubtree) yield break;
        var veths = changes.OfType<CreateVethPair>().Select(c => new NetnsAddressing(c.RouteId, c.Table).HostName).ToHashSet(StringComparer.Ordinal);
        using var host = new Host();
        foreach (var link in host.Rtnl.Links().Where(l => l.Name.StartsWith(NetnsAddressing.HostPrefix, StringComparison.Ordinal) && !veths.Contains(l.Name)))
            yield return Remove($"veth {link.Name}", dryRun, () => host.Rtnl.DeleteLink(link.Name));
    }

    private static Collector.Removal Remove(string what, bool dryRun, Func<bool> remove)
    {
        var failures = new List<string>();
        if (!dryRun)
        {
            try { remove(); }
            catch (Exception e) when (e is KernelException or IOException or UnauthorizedAccessException or InvalidOperationException) { failures.Add(e.Message); }
        }
        return new Collector.Removal(what, "no journal", failures);
    }

    /// <summary>Whether IPv6 can be forwarded from this interface without the global switch (force_forwarding, Linux 6.17).</summary>
    private static bool Ipv6Forwardable(string device) => File.Exists(Sysctl.Path($"net/ipv6/conf/{device}/force_forwarding"));
}
