using System.Net;
using System.Net.Sockets;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Cgroup;
using Via.Mechanisms.Changes;
using Via.Mechanisms.Guard;
using Via.Planning;
using Xunit;

namespace Via.Tests.Unit;

/// <summary>
/// A live route planned again for IFACE as the host shows it now (RouteFollow): what is missing
/// is added, what no longer fits is removed, the route's numbers never change.
/// </summary>
public class RouteFollowTests
{
    private const uint Main = 254;
    private const uint Up = Link.IFF_UP | Link.IFF_RUNNING | Link.IFF_LOWER_UP;
    private static readonly RouteNumbers Numbers = new(0x10000, 0xff0000, 22600, 12000);

    private static IPAddress Ip(string s) => IPAddress.Parse(s);

    private static HostView Host(int index = 3, string address = "10.2.0.2", bool up = true, bool gateway = true, IEnumerable<Route>? extra = null, IEnumerable<Rule>? rules = null) => new(
        [new Link(1, "lo", Up | Link.IFF_LOOPBACK), new Link(2, "eth0", Up), new Link(index, "eth1", up ? Up : 0)],
        [new InterfaceAddress(2, Ip("192.168.1.10"), 24, 0, null), new InterfaceAddress(index, Ip(address), 24, 0, null)],
        [
            new Route(AddressFamily.InterNetwork, Main, Gateway: Ip("192.168.1.1"), OutputLink: 2, Protocol: 4),
            new Route(AddressFamily.InterNetwork, Main, Destination: Ip("10.2.0.0"), DestinationLength: 24, OutputLink: index, PreferredSource: Ip(address), Protocol: 2, Scope: 253),
            .. gateway ? [new Route(AddressFamily.InterNetwork, 200, Gateway: Ip("10.2.0.1"), OutputLink: index, Protocol: 4)] : Array.Empty<Route>(),
            .. extra ?? [],
        ],
        [.. rules ?? []],
        ["/sys/fs/cgroup"]);

    /// <summary>The route as 'via run' made it on <see cref="Host"/>, and the host with everything of it in the kernel.</summary>
    private static (ActiveRoute Route, HostView Host) Made()
    {
        var mechanism = new CgroupBpfMechanism();
        var request = new RouteRequest("eth1");
        var view = Host();
        var resolved = RouteResolver.Resolve(request, view);
        var plan = Planner.Make(request, resolved, view, mechanism, Numbers, Planner.RouteId(Numbers));
        var route = new ActiveRoute(plan.RouteId, Planner.Key("net:[1]", mechanism, resolved, request), "net:[1]", DateTimeOffset.UnixEpoch, "eth1",
            "10.2.0.1", Numbers.Mark, Numbers.Table, mechanism.Name, plan.Membership, [], false, [.. plan.Changes]);
        return (route, InKernel(view, plan.Changes));
    }

    /// <summary>The host with these changes made, as a dump shows them (IPv6 routes added without a metric get 1024).</summary>
    private static HostView InKernel(HostView view, IEnumerable<HostChange> changes) => view with
    {
        Routes = [.. view.Routes, .. changes.OfType<AddRoute>().Select(c => c.Route.Family == AddressFamily.InterNetworkV6 && c.Route.Metric == 0 ? c.Route with { Metric = 1024 } : c.Route)],
        Rules = [.. view.Rules, .. changes.OfType<AddRule>().Select(c => c.Rule)],
    };

    [Fact]
    public void A_route_as_it_was_made_needs_nothing()
    {
        var (route, host) = Made();
        var plan = RouteFollow.Plan(route, host);
        Assert.False(plan.HasWork(route), string.Join("; ", plan.Add.Concat(plan.Remove).Select(c => c.Command)));
        Assert.Equal(Numbers, RouteFollow.Numbers(route));
    }

    [Fact]
    public void Rules_deleted_by_another_program_are_added_again_with_the_same_numbers()
    {
        var (route, host) = Made();
        var plan = RouteFollow.Plan(route, host with { Rules = [] });
        Assert.True(plan.Repairs);
        Assert.Equal(route.Changes.OfType<AddRule>(), plan.Add.OfType<AddRule>());
        Assert.All(plan.Add.OfType<AddRule>(), r => Assert.Equal(Numbers.Priority, r.Rule.Priority));
        Assert.Empty(plan.Remove);
        Assert.Equal(route.Changes, plan.Changes);
    }

    [Fact]
    public void A_new_address_replaces_the_source_rule_and_the_routes_that_named_the_old_one()
    {
        var (route, host) = Made();
        // The kernel dropped the IPv4 routes with src 10.2.0.2; the rule from it stays until via removes it.
        var renumbered = Host(address: "10.2.0.3", extra: host.Routes.Where(r => r.Table == Numbers.Table && r.PreferredSource is null), rules: host.Rules);
        var plan = RouteFollow.Plan(route, renumbered);
        Assert.Equal(RouteHealth.Up, plan.Health);
        Assert.Contains(plan.Add.OfType<AddRule>(), r => Equals(r.Rule.Source, Ip("10.2.0.3")));
        Assert.Contains(plan.Add.OfType<AddRoute>(), r => Equals(r.Route.PreferredSource, Ip("10.2.0.3")) && r.Route.IsDefault);
        var removed = Assert.Single(plan.Remove);
        Assert.Equal(Ip("10.2.0.2"), Assert.IsType<AddRule>(removed).Rule.Source);
        Assert.DoesNotContain(plan.Changes.OfType<AddRule>(), r => Equals(r.Rule.Source, Ip("10.2.0.2")));
        Assert.NotEqual(route.Key, plan.Key); // a new via asking for eth1 now shares this route
    }

    [Theory]
    [InlineData("down")]
    [InlineData("no gateway")]
    [InlineData("gone")]
    public void Without_a_way_out_the_route_waits_with_its_kill_switch_and_fwmark_rules(string what)
    {
        var (route, host) = Made();
        var ours = host.Routes.Where(r => r.Table == Numbers.Table && r.Type == RouteType.Unreachable);
        var now = what switch
        {
            "down" => Host(up: false, extra: ours, rules: host.Rules),
            "no gateway" => Host(gateway: false, extra: ours, rules: host.Rules),
            _ => Host(extra: ours, rules: host.Rules) with { Links = [.. host.Links.Where(l => l.Name != "eth1")] },
        };
        var plan = RouteFollow.Plan(route, now);
        Assert.Equal(RouteHealth.Waiting, plan.Health);
        Assert.Contains("eth1", plan.Waiting);
        Assert.Empty(plan.Add);
        // The source rule goes (nothing routes from it now); fwmark rules and unreachable defaults stay.
        Assert.All(plan.Remove, c => Assert.NotNull(Assert.IsType<AddRule>(c).Rule.Source));
        Assert.Equal(2, plan.Changes.OfType<AddRule>().Count(r => r.Rule.Mark == Numbers.Mark));
        Assert.Equal(2, plan.Changes.OfType<AddRoute>().Count());
        Assert.All(plan.Changes.OfType<AddRoute>(), r => Assert.Equal(RouteType.Unreachable, r.Route.Type));
        Assert.Equal(route.Changes.OfType<AttachEgressGuard>(), plan.Changes.OfType<AttachEgressGuard>()); // the old guard holds
    }

    [Fact]
    public void An_interface_made_again_with_a_new_index_gets_guards_for_it()
    {
        var (route, host) = Made();
        var plan = RouteFollow.Plan(route, Host(index: 7, rules: host.Rules));
        Assert.Equal(7, Assert.Single(plan.Add.OfType<AttachEgressGuard>()).DeviceIndex);
        Assert.Equal(7, Assert.Single(plan.Add.OfType<AttachSetsockoptGuard>()).DeviceIndex);
        Assert.All(plan.Add.OfType<AddRoute>().Where(r => r.Route.Type == RouteType.Unicast), r => Assert.Equal(7, r.Route.OutputLink));
        Assert.Equal(7, Assert.Single(plan.Changes.OfType<AttachEgressGuard>()).DeviceIndex);
        Assert.Equal(route.Changes.Count, plan.Changes.Count);
    }

    [Fact]
    public void The_gateway_is_not_taken_from_the_routes_own_table()
    {
        var (route, host) = Made();
        // up and down: table 200's default went with the link; only via's own (stale) default names a gateway.
        var stale = host.Routes.Where(r => r.Table == Numbers.Table);
        var plan = RouteFollow.Plan(route, Host(gateway: false, extra: stale, rules: host.Rules));
        Assert.Equal(RouteHealth.Waiting, plan.Health);
    }
}
