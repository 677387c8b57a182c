using System.Net;
using System.Net.Sockets;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Cgroup;
using Via.Mechanisms.Changes;
using Via.Planning;
using Xunit;

namespace Via.Tests.Unit;

/// <summary>
/// Planning is a pure function of a <see cref="HostView"/>: these tests build host views by hand
/// and check what RouteResolver, Allocator and Planner make of them.
/// </summary>
public class PlanningTests
{
    private const uint Main = 254, Local = 255;
    private const uint Up = Link.IFF_UP | Link.IFF_RUNNING | Link.IFF_LOWER_UP;
    private static readonly IPAddress V4Eth1 = IPAddress.Parse("10.2.0.2"), Gw4Eth1 = IPAddress.Parse("10.2.0.1");
    private static readonly IPAddress V6Eth1 = IPAddress.Parse("2001:db8:2::2"), Gw6Eth1 = IPAddress.Parse("fe80::1");

    private static IPAddress Ip(string s) => IPAddress.Parse(s);

    private static Link Lo => new(1, "lo", Up | Link.IFF_LOOPBACK);
    private static Link Eth0 => new(2, "eth0", Up);
    private static Link Eth1 => new(3, "eth1", Up);

    private static InterfaceAddress Addr(int link, string ip, byte prefix, byte scope = InterfaceAddress.ScopeUniverse, string? peer = null) =>
        new(link, Ip(ip), prefix, scope, peer is null ? null : Ip(peer));

    private static Route Default4(int link, string gateway, uint table = Main, uint metric = 0) =>
        new(AddressFamily.InterNetwork, table, Gateway: Ip(gateway), OutputLink: link, Metric: metric, Protocol: 4);

    private static Route Default6(int link, string gateway, uint table = Main, uint metric = 1024) =>
        new(AddressFamily.InterNetworkV6, table, Gateway: Ip(gateway), OutputLink: link, Metric: metric, Protocol: 9);

    private static Route Connected(int link, string prefix, byte length, string? src = null, uint metric = 0)
    {
        var destination = Ip(prefix);
        return new Route(destination.AddressFamily, Main, Destination: destination, DestinationLength: length, OutputLink: link,
            PreferredSource: src is null ? null : Ip(src), Metric: metric, Protocol: 2, Scope: InterfaceAddress.ScopeLink);
    }

    private static readonly Rule[] StandardRules =
    [
        new(AddressFamily.InterNetwork, 0, Local), new(AddressFamily.InterNetwork, 32766, Main), new(AddressFamily.InterNetwork, 32767, 253),
        new(AddressFamily.InterNetworkV6, 0, Local), new(AddressFamily.InterNetworkV6, 32766, Main),
    ];

    /// <summary>
    /// A dual-stack host: eth0 is the default route; eth1 (10.2.0.2/24, 2001:db8:2::2/64) has its own
    /// defaults in main with higher metrics, as NetworkManager leaves a second uplink.
    /// </summary>
    internal static HostView TypicalHost(
        IEnumerable<Link>? links = null, IEnumerable<InterfaceAddress>? addresses = null, IEnumerable<Route>? routes = null,
        IEnumerable<Rule>? rules = null, IEnumerable<string>? cgroup2 = null) => new(
        (links ?? [Lo, Eth0, Eth1]).ToList(),
        (addresses ??
        [
            Addr(1, "127.0.0.1", 8, InterfaceAddress.ScopeHost), Addr(1, "::1", 128, InterfaceAddress.ScopeHost),
            Addr(2, "192.168.1.10", 24), Addr(2, "fe80::10", 64, InterfaceAddress.ScopeLink),
            Addr(3, "10.2.0.2", 24), Addr(3, "2001:db8:2::2", 64), Addr(3, "fe80::2", 64, InterfaceAddress.ScopeLink),
        ]).ToList(),
        (routes ??
        [
            Default4(2, "192.168.1.1", metric: 100),
            Default4(3, "10.2.0.1", metric: 200),
            Connected(2, "192.168.1.0", 24, "192.168.1.10", 100),
            Connected(3, "10.2.0.0", 24, "10.2.0.2"),
            new Route(AddressFamily.InterNetwork, Local, RouteType.Local, Ip("10.2.0.2"), 32, OutputLink: 3, PreferredSource: Ip("10.2.0.2"), Protocol: 2, Scope: InterfaceAddress.ScopeHost),
            new Route(AddressFamily.InterNetwork, Local, RouteType.Broadcast, Ip("10.2.0.255"), 32, OutputLink: 3, Protocol: 2, Scope: InterfaceAddress.ScopeLink),
            Connected(3, "2001:db8:2::", 64, metric: 256),
            Connected(3, "fe80::", 64, metric: 256),
            Default6(3, "fe80::1"),
            new Route(AddressFamily.InterNetworkV6, Local, RouteType.Local, Ip("2001:db8:2::2"), 128, OutputLink: 3, Protocol: 2),
        ]).ToList(),
        (rules ?? StandardRules).ToList(),
        (cgroup2 ?? ["/sys/fs/cgroup"]).ToList());

    private static PlanException Refused(RouteRequest request, HostView host) =>
        Assert.Throws<PlanException>(() => RouteResolver.Resolve(request, host));

    private static Plan MakePlan(RouteRequest request, HostView host, string id = "r1") =>
        Planner.Make(request, RouteResolver.Resolve(request, host), host, new CgroupBpfMechanism(), NumberSpace.Default.At(0), id);

    private static List<string> Commands(Plan plan) => plan.Changes.Select(c => c.Command).ToList();

    // ---- RouteResolver: refusals --------------------------------------------------------------

    [Fact]
    public void Unknown_interface_is_refused_with_the_list_of_real_ones()
    {
        var e = Refused(new RouteRequest("eth9"), TypicalHost());

        Assert.Contains("interface 'eth9' does not exist", e.Message);
        Assert.Contains("'ip link'", e.Message);
        Assert.Contains("(eth0, eth1)", e.Message); // loopback is not offered
    }

    [Fact]
    public void Loopback_is_refused()
    {
        var e = Refused(new RouteRequest("lo"), TypicalHost());

        Assert.Contains("'lo' is the loopback interface", e.Message);
        Assert.Contains("choose an interface that leaves the host", e.Message);
    }

    [Fact]
    public void Interface_down_is_refused_with_the_command_to_bring_it_up()
    {
        var e = Refused(new RouteRequest("eth1"), TypicalHost(links: [Lo, Eth0, new Link(3, "eth1", Link.IFF_LOWER_UP)]));

        Assert.Contains("'eth1' is down", e.Message);
        Assert.Contains("ip link set eth1 up", e.Message);
    }

    [Fact]
    public void Interface_with_only_a_link_local_address_has_no_address()
    {
        var host = TypicalHost(addresses: [Addr(2, "192.168.1.10", 24), Addr(3, "fe80::2", 64, InterfaceAddress.ScopeLink)]);

        var e = Refused(new RouteRequest("eth1"), host);

        Assert.Contains("'eth1' has no address", e.Message);
        Assert.Contains("ip addr add ADDR/LEN dev eth1", e.Message);
    }

    [Fact]
    public void Source_that_is_not_on_the_interface_is_refused()
    {
        var e = Refused(new RouteRequest("eth1", Source: Ip("192.168.1.10")), TypicalHost());

        Assert.Contains("192.168.1.10 is not an address of 'eth1'", e.Message);
        Assert.Contains("10.2.0.2", e.Message); // what it does have
        Assert.Contains("--src", e.Message);
    }

    [Fact]
    public void Gateway_outside_the_interface_subnets_is_refused()
    {
        var e = Refused(new RouteRequest("eth1", Gateway: Ip("192.168.1.1")), TypicalHost());

        Assert.Contains("gateway 192.168.1.1 is not on a subnet of 'eth1'", e.Message);
        Assert.Contains("10.2.0.2/24", e.Message);
        Assert.Contains("pass a gateway on that link", e.Message);
    }

    [Fact]
    public void IPv4_gateway_for_an_interface_without_IPv4_is_refused()
    {
        var host = TypicalHost(addresses: [Addr(3, "2001:db8:2::2", 64)]);

        var e = Refused(new RouteRequest("eth1", Gateway: Ip("10.2.0.1")), host);

        Assert.Contains("gateway 10.2.0.1 is IPv4 but 'eth1' has no IPv4 address", e.Message);
    }

    [Fact]
    public void No_IPv4_gateway_anywhere_asks_for_one()
    {
        // eth1 has an address but no default route through it in any table; eth0's default does not count.
        var host = TypicalHost(routes: [Default4(2, "192.168.1.1"), Connected(3, "10.2.0.0", 24, "10.2.0.2"), Default4(2, "192.168.1.1", table: 100)]);

        var e = Refused(new RouteRequest("eth1"), host);

        Assert.Contains("no IPv4 gateway found for 'eth1'", e.Message);
        Assert.Contains("not point-to-point", e.Message);
        Assert.Contains("pass --gateway ADDRESS", e.Message);
    }

    [Fact]
    public void IPv6_only_interface_without_a_default_route_asks_for_a_gateway()
    {
        var host = TypicalHost(addresses: [Addr(3, "2001:db8:2::2", 64)], routes: [Connected(3, "2001:db8:2::", 64, metric: 256)]);

        var e = Refused(new RouteRequest("eth1"), host);

        Assert.Contains("no gateway found for 'eth1'", e.Message);
        Assert.Contains("pass --gateway ADDRESS", e.Message);
    }

    // ---- RouteResolver: what it finds ---------------------------------------------------------

    [Fact]
    public void Typical_interface_resolves_both_families()
    {
        var r = RouteResolver.Resolve(new RouteRequest("eth1"), TypicalHost());

        Assert.Equal("eth1", r.Link.Name);
        Assert.Equal(Gw4Eth1, r.Gateway4);
        Assert.Equal(V4Eth1, r.Source4);
        Assert.Equal(Gw6Eth1, r.Gateway6);
        Assert.Equal(V6Eth1, r.Source6); // the global address, not fe80::2
        Assert.True(r.Routes4);
        Assert.True(r.Routes6);
        // On-link prefixes of eth1 from main only: not eth0's, not the local/broadcast table entries.
        Assert.Equal(["10.2.0.0/24", "2001:db8:2::/64", "fe80::/64"], r.Connected.Select(c => $"{c.Destination}/{c.DestinationLength}"));
    }

    [Fact]
    public void IPv4_gateway_is_found_in_a_table_other_than_main()
    {
        // Some setups (NetworkManager policy routing, DHCP hooks) keep the second uplink's default in its own table.
        var host = TypicalHost(routes: [Default4(2, "192.168.1.1"), Connected(3, "10.2.0.0", 24), Default4(3, "10.2.0.1", table: 100)]);

        var r = RouteResolver.Resolve(new RouteRequest("eth1"), host);

        Assert.Equal(Gw4Eth1, r.Gateway4);
        Assert.Null(r.Gateway6);
    }

    [Fact]
    public void Main_table_gateway_wins_then_the_lowest_metric()
    {
        var host = TypicalHost(routes:
        [
            Default4(3, "10.2.0.254", table: 100, metric: 1),
            Default4(3, "10.2.0.20", metric: 300),
            Default4(3, "10.2.0.10", metric: 100),
        ]);

        Assert.Equal(Ip("10.2.0.10"), RouteResolver.Resolve(new RouteRequest("eth1"), host).Gateway4);
    }

    [Fact]
    public void Unreachable_default_through_the_interface_is_not_a_gateway()
    {
        var host = TypicalHost(routes:
        [
            new Route(AddressFamily.InterNetwork, 100, RouteType.Unreachable, OutputLink: 3, Gateway: Ip("10.2.0.9")),
            Default4(3, "10.2.0.1", table: 101),
        ]);

        Assert.Equal(Gw4Eth1, RouteResolver.Resolve(new RouteRequest("eth1"), host).Gateway4);
    }

    [Fact]
    public void IPv6_gateway_is_found_in_a_table_other_than_main()
    {
        var host = TypicalHost(routes: [Default4(3, "10.2.0.1"), Default6(3, "fe80::99", table: 300)]);

        Assert.Equal(Ip("fe80::99"), RouteResolver.Resolve(new RouteRequest("eth1"), host).Gateway6);
    }

    [Fact]
    public void Explicit_gateway_and_source_override_what_the_host_says()
    {
        var host = TypicalHost(addresses: [Addr(3, "10.2.0.2", 24), Addr(3, "10.2.0.3", 24), Addr(3, "2001:db8:2::2", 64)]);

        var r = RouteResolver.Resolve(new RouteRequest("eth1", Gateway: Ip("10.2.0.254"), Source: Ip("10.2.0.3")), host);

        Assert.Equal(Ip("10.2.0.254"), r.Gateway4);
        Assert.Equal(Ip("10.2.0.3"), r.Source4);
        Assert.Equal(Gw6Eth1, r.Gateway6); // still discovered
    }

    [Fact]
    public void Point_to_point_link_needs_no_gateway()
    {
        var wg = new Link(5, "wg0", Up | Link.IFF_POINTOPOINT);
        var host = TypicalHost(links: [Lo, Eth0, wg], addresses: [Addr(5, "10.9.0.2", 32, peer: "10.9.0.1")],
            routes: [Default4(2, "192.168.1.1"), Connected(5, "10.9.0.1", 32, "10.9.0.2")]);

        var plan = MakePlan(new RouteRequest("wg0"), host);

        Assert.Null(plan.Route.Gateway4);
        Assert.True(plan.Route.Routes4);
        Assert.False(plan.Route.Routes6);
        var defaults = plan.Changes.OfType<AddRoute>().Where(c => c.Route.IsDefault && c.Route.Type == RouteType.Unicast).ToList();
        var d = Assert.Single(defaults);
        Assert.Equal("ip route add default dev wg0 src 10.9.0.2 table 22000 proto 86", d.Command);
        Assert.Equal(InterfaceAddress.ScopeLink, d.Route.Scope); // no next hop: the route is on-link
        Assert.Equal(5, d.Route.OutputLink);
    }

    // ---- Planner -----------------------------------------------------------------------------

    [Fact]
    public void Typical_plan_steps_in_order_with_their_ip_equivalents()
    {
        var plan = MakePlan(new RouteRequest("eth1"), TypicalHost(), "t22000-p42");

        Assert.Equal(
        [
            "mkdir -p /sys/fs/cgroup/via/t22000-p42",
            "bpftool cgroup attach /sys/fs/cgroup/via/t22000-p42 sock_create <via_mark: mark=0x10000> multi",
            "bpftool cgroup attach /sys/fs/cgroup/via/t22000-p42 setsockopt <via_guard: EPERM for SO_MARK, SO_BINDTODEVICE, SO_BINDTOIFINDEX, SO_DONTROUTE, IP(V6)_UNICAST_IF other than ifindex 3> multi",
            "bpftool cgroup attach /sys/fs/cgroup/via/t22000-p42 egress <via_egress: pass dev eth1 (ifindex 3) and lo, drop the rest, count> multi"
                + "; bpftool cgroup attach /sys/fs/cgroup/via/t22000-p42 ingress <via_ingress: count> multi"
                + "; bpftool cgroup attach /sys/fs/cgroup/via/t22000-p42 connect6 <via_connect6: bind link-local connects to eth1> multi",
            "ip route add 10.2.0.0/24 dev eth1 src 10.2.0.2 table 22000 proto 86",
            "ip route add default via 10.2.0.1 dev eth1 src 10.2.0.2 table 22000 proto 86",
            "ip route add unreachable default metric 4278198272 table 22000 proto 86",
            "ip -6 route add 2001:db8:2::/64 dev eth1 metric 256 table 22000 proto 86",
            "ip -6 route add fe80::/64 dev eth1 metric 256 table 22000 proto 86",
            "ip -6 route add default via fe80::1 dev eth1 table 22000 proto 86",
            "ip -6 route add unreachable default metric 4278198272 table 22000 proto 86",
            "ip rule add pref 12000 fwmark 0x10000/0xff0000 lookup 22000 proto 86",
            "ip -6 rule add pref 12000 fwmark 0x10000/0xff0000 lookup 22000 proto 86",
            "ip rule add pref 12000 from 10.2.0.2/32 lookup 22000 proto 86",
            "ip -6 rule add pref 12000 from 2001:db8:2::2/128 lookup 22000 proto 86",
        ], Commands(plan));
        Assert.Equal("/sys/fs/cgroup/via/t22000-p42", plan.Membership);
        Assert.Equal("/sys/fs/cgroup/via/t22000-p42", plan.Membership);
        Assert.Empty(plan.Launch.Environment);
        Assert.Equal(new RouteNumbers(0x10000, 0xff0000, 22000, 12000), plan.Numbers);
    }

    [Fact]
    public void Typical_plan_changes_carry_the_kernel_values()
    {
        var plan = MakePlan(new RouteRequest("eth1"), TypicalHost());
        var routes = plan.Changes.OfType<AddRoute>().Select(c => c.Route).ToList();
        var rules = plan.Changes.OfType<AddRule>().Select(c => c.Rule).ToList();

        Assert.All(routes, r => Assert.Equal(22000u, r.Table));
        Assert.All(routes, r => Assert.Equal(Planner.Protocol, r.Protocol));
        Assert.All(rules, r => Assert.Equal(Planner.Protocol, r.Protocol));
        Assert.All(rules, r => Assert.Equal(12000u, r.Priority));
        Assert.All(rules, r => Assert.Equal(RuleAction.ToTable, r.Action));
        Assert.Equal(86, Planner.Protocol);
        Assert.Equal(0xff002000u, Planner.KillSwitchMetric);

        var gw = routes.Single(r => r.Family == AddressFamily.InterNetwork && r.IsDefault && r.Type == RouteType.Unicast);
        Assert.Equal(InterfaceAddress.ScopeUniverse, gw.Scope);
        Assert.Equal(3, gw.OutputLink);
        var killSwitches = routes.Where(r => r.Type == RouteType.Unreachable).ToList();
        Assert.Equal([AddressFamily.InterNetwork, AddressFamily.InterNetworkV6], killSwitches.Select(r => r.Family));
        Assert.All(killSwitches, r => Assert.True(r.IsDefault && r.OutputLink == 0 && r.Gateway is null && r.Metric == Planner.KillSwitchMetric));
        // The copied connected route keeps its link scope, takes via's tag and the route's source.
        var connected = routes.Single(r => r.Destination?.Equals(Ip("10.2.0.0")) == true);
        Assert.Equal(InterfaceAddress.ScopeLink, connected.Scope);
        Assert.Equal(V4Eth1, connected.PreferredSource);

        var marks = rules.Where(r => r.Mark is not null).ToList();
        Assert.Equal(2, marks.Count);
        Assert.All(marks, r => Assert.True(r.Mark == 0x10000 && r.MarkMask == 0xff0000 && r.Source is null));
    }

    [Fact]
    public void Undo_commands_mirror_the_steps()
    {
        var plan = MakePlan(new RouteRequest("eth1"), TypicalHost());
        var undo = plan.Changes.Select(c => c.UndoCommand).ToList();

        Assert.Equal("rmdir /sys/fs/cgroup/via/r1", undo[0]);
        Assert.Equal("bpftool cgroup detach /sys/fs/cgroup/via/r1 sock_create name via_mark", undo[1]);
        Assert.Equal("bpftool cgroup detach /sys/fs/cgroup/via/r1 setsockopt name via_guard", undo[2]);
        Assert.Contains("ip route del default via 10.2.0.1 dev eth1 src 10.2.0.2 table 22000 proto 86", undo);
        Assert.Contains("ip -6 rule del pref 12000 fwmark 0x10000/0xff0000 lookup 22000 proto 86", undo);
    }

    [Fact]
    public void IPv6_without_a_route_gets_only_an_unreachable_default()
    {
        // eth1 has a global IPv6 address but no IPv6 default route anywhere.
        var host = TypicalHost(routes: [Default4(3, "10.2.0.1"), Connected(3, "10.2.0.0", 24, "10.2.0.2"), Connected(3, "2001:db8:2::", 64, metric: 256)]);

        var plan = MakePlan(new RouteRequest("eth1"), host);

        Assert.True(plan.Route.Routes4);
        Assert.False(plan.Route.Routes6);
        var v6 = Commands(plan).Where(c => c.StartsWith("ip -6 ", StringComparison.Ordinal)).ToList();
        Assert.Equal(
        [
            "ip -6 route add unreachable default metric 4278198272 table 22000 proto 86",
            // marked IPv6 sockets still look up the table, and find only the unreachable default
            "ip -6 rule add pref 12000 fwmark 0x10000/0xff0000 lookup 22000 proto 86",
        ], v6);
    }

    [Fact]
    public void IPv6_without_an_address_gets_only_an_unreachable_default()
    {
        var host = TypicalHost(addresses: [Addr(3, "10.2.0.2", 24)]);

        var plan = MakePlan(new RouteRequest("eth1"), host);

        Assert.Null(plan.Route.Source6);
        Assert.Null(plan.Route.Gateway6); // not looked up without a source
        var v6Routes = plan.Changes.OfType<AddRoute>().Where(c => c.Route.Family == AddressFamily.InterNetworkV6).ToList();
        Assert.Equal(RouteType.Unreachable, Assert.Single(v6Routes).Route.Type);
        Assert.DoesNotContain(plan.Changes.OfType<AddRule>(), c => c.Rule.Family == AddressFamily.InterNetworkV6 && c.Rule.Source is not null);
    }

    [Fact]
    public void Explicit_source_is_used_in_routes_and_the_from_rule()
    {
        var host = TypicalHost(addresses: [Addr(3, "10.2.0.2", 24), Addr(3, "10.2.0.3", 24)]);

        var plan = MakePlan(new RouteRequest("eth1", Source: Ip("10.2.0.3")), host);

        var commands = Commands(plan);
        Assert.Contains("ip route add default via 10.2.0.1 dev eth1 src 10.2.0.3 table 22000 proto 86", commands);
        Assert.Contains("ip rule add pref 12000 from 10.2.0.3/32 lookup 22000 proto 86", commands);
        Assert.DoesNotContain(commands, c => c.Contains("10.2.0.2/32", StringComparison.Ordinal));
    }

    [Fact]
    public void Mount_step_comes_first_only_when_no_cgroup2_is_visible()
    {
        var without = MakePlan(new RouteRequest("eth1"), TypicalHost(cgroup2: []));
        var with = MakePlan(new RouteRequest("eth1"), TypicalHost(cgroup2: ["/sys/fs/cgroup/unified"]));

        Assert.Equal("mount -t cgroup2 none /run/via/cgroup2", without.Changes[0].Command);
        Assert.Equal("mkdir -p /run/via/cgroup2/via/r1", without.Changes[1].Command);
        Assert.Equal("/run/via/cgroup2/via/r1", without.Membership);
        Assert.Single(without.Changes.OfType<MountCgroup2>());

        Assert.Empty(with.Changes.OfType<MountCgroup2>());
        Assert.Equal("mkdir -p /sys/fs/cgroup/unified/via/r1", with.Changes[0].Command);
        Assert.Equal("/sys/fs/cgroup/unified/via/r1", with.Membership);
    }

    [Fact]
    public void Refused_request_plans_nothing()
    {
        Assert.Throws<PlanException>(() => MakePlan(new RouteRequest("eth9"), TypicalHost()));
    }

    // ---- RouteCgroups.Root --------------------------------------------------------------

    [Theory]
    [InlineData(new[] { "/sys/fs/cgroup/unified", "/sys/fs/cgroup" }, "/sys/fs/cgroup")]
    [InlineData(new[] { "/mnt/cg", "/sys/fs/cgroup/unified" }, "/sys/fs/cgroup/unified")]
    [InlineData(new[] { "/mnt/cg", "/run/other" }, "/mnt/cg")]
    [InlineData(new string[0], "/run/via/cgroup2")]
    public void Cgroup_root_prefers_the_unified_mount_then_the_hybrid_one(string[] mounts, string expected)
    {
        Assert.Equal(expected, RouteCgroups.Root(TypicalHost(cgroup2: mounts)));
    }

    // ---- Allocator ---------------------------------------------------------------------------

    private static ActiveRoute Journaled(uint mark, uint table) =>
        new("old", "key", "net:[1]", DateTimeOffset.UnixEpoch, "eth1", null, mark, table, "cgroup", null, [new(1, 0)], false, []);

    [Fact]
    public void Default_space_starts_at_table_22000_mark_0x10000()
    {
        var n = Allocator.Allocate(TypicalHost(), [], NumberSpace.Default);

        Assert.Equal(new RouteNumbers(0x10000, 0xff0000, 22000, 12000), n);
    }

    [Fact]
    public void Allocator_skips_tables_used_by_host_rules_and_routes_and_marks_used_by_rules_and_journals()
    {
        var host = TypicalHost(
            routes: [Default4(3, "10.2.0.1"), Default4(3, "10.2.0.1", table: 22002)],                    // index 2: table used by a route
            rules: [.. StandardRules,
                new Rule(AddressFamily.InterNetwork, 100, 22000),                                          // index 0: table used by a rule
                new Rule(AddressFamily.InterNetworkV6, 101, 500, Mark: 0x20000, MarkMask: 0xff0000)]);   // index 1: mark used by a rule

        var n = Allocator.Allocate(host, [Journaled(0x40000, 9999)], NumberSpace.Default);                 // index 3: mark in via's journal

        Assert.Equal(new RouteNumbers(0x50000, 0xff0000, 22004, 12000), n);
    }

    [Fact]
    public void Allocator_skips_a_table_whose_route_cgroup_exists_and_refuses_it_as_table()
    {
        // A route of another namespace or state directory: no rule or journal seen here, but its cgroup holds the name.
        var host = TypicalHost() with { RouteCgroups = ["t22000", "t22001", "doctor-42", "tx"] };

        Assert.Equal(22002u, Allocator.Allocate(host, [], NumberSpace.Default).Table);
        var e = Assert.Throws<PlanException>(() => Allocator.Allocate(host, [], NumberSpace.Default, 22001));
        Assert.Contains("via's cgroup t22001", e.Message);
    }

    [Fact]
    public void Allocator_skips_a_table_recorded_in_the_journal()
    {
        var n = Allocator.Allocate(TypicalHost(), [Journaled(0x990000, 22000)], NumberSpace.Default);

        Assert.Equal(22001u, n.Table);
        Assert.Equal(0x20000u, n.Mark);
    }

    [Fact]
    public void Marks_outside_via_mask_do_not_collide()
    {
        // WireGuard's 0xca6c and kube-proxy's 0x4000 live outside 0x00ff0000.
        var host = TypicalHost(rules: [.. StandardRules,
            new Rule(AddressFamily.InterNetwork, 5000, 51820, Mark: 0xca6c),
            new Rule(AddressFamily.InterNetwork, 5001, 300, Mark: 0x4000, MarkMask: 0x4000)]);

        Assert.Equal(0x10000u, Allocator.Allocate(host, [], NumberSpace.Default).Mark);
    }

    [Fact]
    public void Exhausted_space_is_refused_with_what_to_do()
    {
        var space = new NumberSpace(FirstTable: 22000, Count: 3);
        var host = TypicalHost(rules: [.. StandardRules, new Rule(AddressFamily.InterNetwork, 1, 22000), new Rule(AddressFamily.InterNetwork, 2, 22001)]);

        var e = Assert.Throws<PlanException>(() => Allocator.Allocate(host, [Journaled(0x30000, 1)], space));

        Assert.Contains("all 3 route numbers", e.Message);
        Assert.Contains("22000-22002", e.Message);
        Assert.Contains("via gc", e.Message);
    }

    [Fact]
    public void Default_space_numbers_are_distinct_nonzero_and_inside_the_mask()
    {
        var all = Enumerable.Range(0, (int)NumberSpace.Default.Count).Select(i => NumberSpace.Default.At((uint)i)).ToList();

        Assert.All(all, n => Assert.True(n.Mark != 0 && (n.Mark & ~n.MarkMask) == 0, $"mark 0x{n.Mark:x}"));
        Assert.Equal(all.Count, all.Select(n => n.Mark).Distinct().Count());
        Assert.Equal(all.Count, all.Select(n => n.Table).Distinct().Count());
        Assert.Equal(0xff0000u, all[^1].Mark);
        Assert.Equal(22254u, all[^1].Table);
    }

    [Fact]
    public void Custom_mask_shifts_marks_to_its_lowest_bit()
    {
        var space = new NumberSpace(FirstTable: 500, Count: 15, MarkMask: 0xf00, Priority: 9000);

        Assert.Equal(new RouteNumbers(0x100, 0xf00, 500, 9000), space.At(0));
        Assert.Equal(new RouteNumbers(0xf00, 0xf00, 514, 9000), space.At(14));
    }
}
