using System.Net;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Netns;
using Via.Planning;

namespace Via.Tests.Unit;

/// <summary>--ip (the netns mechanism's macvlan): its values read, checked against IFACE, planned, and journaled.</summary>
public sealed class DirectAttachmentTests
{
    private static readonly Link Ether1 = new(3, "eth1", Link.IFF_UP | Link.IFF_LOWER_UP, Link.ArphrdEther);

    private static HostView Host(Link? eth1 = null) =>
        PlanningTests.TypicalHost(links: [new Link(1, "lo", Link.IFF_UP | Link.IFF_LOOPBACK, 772), new Link(2, "eth0", Link.IFF_UP, Link.ArphrdEther), eth1 ?? Ether1]);

    private static DirectAttachment Parsed(params string[] values) =>
        DirectAttachment.Parse(values, out string? error) ?? throw new InvalidOperationException(error);

    private static DirectAttachment Planned(HostView host, params string[] values)
    {
        var request = new RouteRequest("eth1", Direct: Parsed(values));
        return DirectPlanner.Plan(request.Direct!, RouteResolver.Resolve(request, host), host, []);
    }

    [Theory]
    [InlineData("10.2.0.77/24", "10.2.0.77/24", null)]
    [InlineData("10.2.0.77", "10.2.0.77", null)]
    [InlineData("2001:db8:2::77/64", null, "2001:db8:2::77/64")]
    [InlineData("10.2.0.77/24,2001:db8:2::77/64", "10.2.0.77/24", "2001:db8:2::77/64")]
    [InlineData(" 2001:db8:2::77 , 10.2.0.77/31", "10.2.0.77/31", "2001:db8:2::77")]
    public void Values_are_one_IPv4_and_one_IPv6_address_with_an_optional_prefix(string value, string? v4, string? v6)
    {
        var d = Parsed(value);
        Assert.Equal(v4, d.V4?.ToString());
        Assert.Equal(v6, d.V6?.ToString());
    }

    [Theory]
    [InlineData("10.2.0", "is not an IPv4 or IPv6 address")]
    [InlineData("10.2.0.777/24", "is not an IPv4 or IPv6 address")]
    [InlineData("10.2.0.77/24/1", "is not an IPv4 or IPv6 address")]
    [InlineData("fe80::1%eth1", "is not an IPv4 or IPv6 address")]
    [InlineData("10.2.0.77/0", "from 1 to 32")]
    [InlineData("10.2.0.77/x", "from 1 to 32")]
    [InlineData("2001:db8::1/129", "from 1 to 128")]
    [InlineData("10.2.0.0/24", "the network address of its /24")]
    [InlineData("10.2.0.255/24", "the broadcast address of its /24")]
    [InlineData("127.0.0.2/8", "loopback")]
    [InlineData("224.0.0.1/24", "multicast")]
    [InlineData("fe80::7/64", "link-local")]
    [InlineData("169.254.1.7/16", "link-local")]
    [InlineData("0.0.0.0/8", "unspecified")]
    [InlineData("::ffff:10.2.0.77/120", "IPv4-mapped")]
    [InlineData("10.2.0.77/24,10.2.0.78/24", "one IPv4 and one IPv6 address at most")]
    [InlineData("", "is not an IPv4 or IPv6 address")]
    public void A_malformed_value_is_refused_with_the_reason(string value, string reason)
    {
        Assert.Null(DirectAttachment.Parse([value], out string? error));
        Assert.Contains(reason, error);
    }

    [Fact]
    public void Planned_it_takes_the_routes_gateways_and_the_missing_prefix_from_the_interface()
    {
        var d = Planned(Host(), "10.2.0.77", "2001:db8:2::77");
        Assert.Equal("10.2.0.77/24", d.V4!.ToString());
        Assert.Equal("2001:db8:2::77/64", d.V6!.ToString());
        Assert.Equal(IPAddress.Parse("10.2.0.1"), d.Gateway4);
        Assert.Equal(IPAddress.Parse("fe80::1"), d.Gateway6); // link-local: on-link whatever the prefix
    }

    [Theory]
    [InlineData("10.2.0.2/24", "already an address of this host (eth1)")]
    [InlineData("192.168.1.10/24", "already an address of this host (eth0)")]
    [InlineData("10.9.0.7/24", "gateway 10.2.0.1 is not in its prefix")]
    [InlineData("10.9.0.7", "eth1 has no on-link prefix that holds 10.9.0.7")]
    public void An_address_the_interface_cannot_have_is_refused(string value, string reason)
    {
        var e = Assert.Throws<PlanException>(() => Planned(Host(), value));
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void An_interface_that_is_not_Ethernet_is_refused()
    {
        var e = Assert.Throws<PlanException>(() => Planned(Host(Ether1 with { Type = 65534 }), "10.2.0.77/24"));
        Assert.Contains("--ip needs an Ethernet interface, and eth1 is not (link type 65534", e.Message);
    }

    [Fact]
    public void An_address_of_another_routes_macvlan_is_refused()
    {
        var host = Host();
        var request = new RouteRequest("eth1", Direct: Parsed("10.2.0.77/24"));
        var other = new ActiveRoute("t22001", "k", "net:[1]", DateTimeOffset.UnixEpoch, "eth1", null, 1, 22001, "netns", "/cg", [], false,
            [new CreateMacvlan("t22001", "eth1", Parsed("10.2.0.77/24"))]);
        var e = Assert.Throws<PlanException>(() => DirectPlanner.Plan(request.Direct!, RouteResolver.Resolve(request, host), host, [other]));
        Assert.Contains("already the address of via route t22001", e.Message);
    }

    [Fact]
    public void The_netns_plan_has_a_macvlan_and_no_veth_NAT_or_forwarding()
    {
        var host = Host();
        var request = new RouteRequest("eth1", Direct: Parsed("10.2.0.77/24"));
        var resolved = RouteResolver.Resolve(request, host);
        var direct = DirectPlanner.Plan(request.Direct!, resolved, host, []);
        var plan = Planner.Make(request, resolved, host, new NetnsMechanism(), NumberSpace.Default.At(0), "t22000", direct: direct);
        Assert.Contains(plan.Changes, c => c is CreateMacvlan);
        Assert.DoesNotContain(plan.Changes, c => c is CreateVethPair or NetnsTable or Via.Mechanisms.Changes.NftTable or InterfaceForwarding or ForwardRule);
        Assert.Contains("ip -n NS route add default via 10.2.0.1 dev via0", plan.Changes.OfType<CreateMacvlan>().Single().Command);
        // Another key than the same route without --ip, or with another address.
        string key = Planner.Key("net:[1]", "netns", resolved, request);
        Assert.NotEqual(Planner.Key("net:[1]", "netns", resolved, request with { Direct = null }), key);
        Assert.NotEqual(Planner.Key("net:[1]", "netns", resolved, request with { Direct = Parsed("10.2.0.78/24") }), key);
        Assert.Equal(Planner.Key("net:[1]", "netns", resolved, request with { Direct = Parsed("10.2.0.77") }), key);
        Assert.Throws<PlanException>(() => Planner.Make(request, resolved, host, new Via.Mechanisms.Cgroup.CgroupBpfMechanism(), NumberSpace.Default.At(0), "t22000", direct: direct));

        // The route's watcher, which knows the route by its journal, finds the same key (--ip from the macvlan change):
        // nothing to re-make, and a later run without --ip does not join it.
        var route = new ActiveRoute("t22000", key, "net:[1]", DateTimeOffset.UnixEpoch, "eth1", "10.2.0.1", plan.Numbers.Mark, plan.Numbers.Table, "netns", plan.Membership, [], false, [.. plan.Changes]);
        var follow = RouteFollow.Plan(route, host);
        Assert.Equal(key, follow.Key);
        Assert.Contains(follow.Changes, c => c is CreateMacvlan);
    }

    [Fact]
    public void Run_help_teaches_the_option()
    {
        var w = new StringWriter();
        Via.Cli.Program.BuildRoot("run").Parse(["run", "--help"]).Invoke(new System.CommandLine.InvocationConfiguration { Output = w });
        string help = w.ToString();
        Assert.Contains("--ip <ADDRESS[/PREFIX][,...]>", help);
        Assert.Contains("macvlan", help);
        Assert.Contains("--ip 192.168.1.77/24", help);
    }

    [Fact]
    public void The_macvlan_survives_the_journal()
    {
        var route = new ActiveRoute("t22000", "k", "net:[1]", DateTimeOffset.UnixEpoch, "eth1", null, 1, 22000, "netns", "/cg", [], false,
        [
            new CreateMacvlan("t22000", "eth1", new DirectAttachment(new HostAddress(IPAddress.Parse("10.2.0.77"), 24), new HostAddress(IPAddress.Parse("2001:db8:2::77"), 64),
                IPAddress.Parse("10.2.0.1"), IPAddress.Parse("fe80::1"))),
            new CreateMacvlan("t22000", "eth1", new DirectAttachment(null, new HostAddress(IPAddress.Parse("2001:db8:2::77"), 64))),
        ]);
        var back = JournalCodec.Decode(JournalCodec.Encode(route), "test");
        Assert.Equal(route.Changes, back.Changes);
    }
}
