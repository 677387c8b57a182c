using System.Net;
using System.Net.Sockets;
using Via.Cli;
using Via.Cli.Commands.Run;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Cgroup;
using Via.Mechanisms.Changes;
using Via.Mechanisms.Guard;
using Via.Planning;
using Via.Planning.Dns;
using Xunit;

namespace Via.Tests.Unit;

/// <summary>'via run --only SPEC': what a SPEC is, the rules a route with filters gets, its key, journal and DNS.</summary>
public sealed class OnlyUnitTests
{
    private static DestinationFilters Only(params string[] specs) =>
        DestinationFilters.Parse(specs, out string? error) ?? throw new InvalidOperationException(error);

    [Theory]
    [InlineData("tcp:3306", "tcp:3306")]
    [InlineData("UDP:53", "udp:53")]
    [InlineData("tcp:8000-8080", "tcp:8000-8080")]
    [InlineData("10.20.0.0/16", "10.20.0.0/16")]
    [InlineData("10.20.0.7", "10.20.0.7/32")]
    [InlineData("2001:db8::/32", "2001:db8::/32")]
    [InlineData("2001:db8::1", "2001:db8::1/128")]
    [InlineData("10.20.0.0/16@tcp:3306", "10.20.0.0/16@tcp:3306")]
    [InlineData("2001:db8::/32@udp:53", "2001:db8::/32@udp:53")]
    [InlineData(" 0.0.0.0/0 ", "0.0.0.0/0")]
    public void A_spec_is_read_and_written_back_canonically(string spec, string canonical)
    {
        var filter = DestinationFilter.Parse(spec, out string? error);
        Assert.Null(error);
        Assert.Equal(canonical, filter!.ToString());
        Assert.Equal(filter, DestinationFilter.Parse(canonical, out _));
    }

    [Theory]
    [InlineData("", "is not a destination")]
    [InlineData("mysql", "is not a destination")]
    [InlineData("sctp:80", "tcp or udp")]
    [InlineData("tcp:0", "is not a port")]
    [InlineData("tcp:70000", "is not a port")]
    [InlineData("tcp:90-80", "is not a port")]
    [InlineData("tcp:65535", "port 65535")]
    [InlineData("tcp:65000-65535", "port 65535")]
    [InlineData("10.20.0.1/16", "write the network, 10.20.0.0/16")]
    [InlineData("10.20.0.0/33", "prefix length 0-32")]
    [InlineData("2001:db8::/129", "prefix length 0-128")]
    [InlineData("10.20.0/16", "is not a destination")]
    [InlineData("fe80::1%eth0", "is not a destination")]
    [InlineData("10.20.0.0/16@", "tcp or udp")]
    [InlineData("10.20.0.0/16@3306", "tcp or udp")]
    [InlineData("@tcp:3306", "is not a destination")]
    public void A_bad_spec_is_refused_naming_it(string spec, string why)
    {
        Assert.Null(DestinationFilter.Parse(spec, out string? error));
        Assert.Contains(why, error);
        if (spec.Trim().Length > 0) Assert.Contains(spec.Trim().Split('@', '/')[0], error);
    }

    [Fact]
    public void A_set_is_canonical_whatever_the_order_and_repeats()
    {
        var a = Only("tcp:3306", "10.20.0.0/16,2001:db8::/32");
        var b = Only("2001:db8::/32", "10.20.0.0/16", "tcp:3306", "tcp:3306");
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.Equal(3, a.Items.Count);
        Assert.Equal(a, Only(a.ToString()));
        Assert.Null(DestinationFilters.Parse(["tcp:3306,,udp:53"], out string? error));
        Assert.NotNull(error);
    }

    [Fact]
    public void The_command_line_takes_only_repeated_and_refuses_a_bad_spec()
    {
        var ok = Program.BuildRoot("run").Parse(["run", "--dev", "eth1", "--only", "tcp:3306", "--only", "10.20.0.0/16", "--", "true"]);
        Assert.Empty(ok.Errors);
        Assert.Equal("10.20.0.0/16,tcp:3306", RunCommandDefinition.Options(ok).Only!.ToString());
        var bad = Program.BuildRoot("run").Parse(["run", "--dev", "eth1", "--only", "tcp:99999", "--", "true"]);
        Assert.Contains(bad.Errors, e => e.Message.Contains("tcp:99999", StringComparison.Ordinal) && e.Message.Contains("--only", StringComparison.Ordinal));
        // The fast path reads --only as System.CommandLine does (RunFastParseTests), and leaves a bad SPEC to it.
        Assert.Equal("tcp:3306", RunFastParse.TryParse(["run", "--dev", "eth1", "--only", "tcp:3306", "--", "true"])!.Only!.ToString());
        Assert.Null(RunFastParse.TryParse(["run", "--dev", "eth1", "--only", "tcp:99999", "--", "true"]));
    }

    private static Plan MakePlan(RouteRequest request) =>
        Planner.Make(request, RouteResolver.Resolve(request, PlanningTests.TypicalHost()), PlanningTests.TypicalHost(), new CgroupBpfMechanism(), NumberSpace.Default.At(0), "r1");

    [Fact]
    public void Each_filter_gets_a_fwmark_rule_per_family_it_covers_least_selective_first()
    {
        var plan = MakePlan(new RouteRequest("eth1", Only: Only("tcp:3306", "10.20.0.0/16", "2001:db8::/32@udp:53")));
        var rules = plan.Changes.OfType<AddRule>().Where(c => c.Rule.Mark is not null).Select(c => c.Command).ToList();
        Assert.Equal(
        [
            "ip rule add pref 12000 to 10.20.0.0/16 fwmark 0x10000/0xff0000 lookup 22000 proto 86",
            "ip rule add pref 12000 fwmark 0x10000/0xff0000 ipproto tcp dport 3306 lookup 22000 proto 86",
            "ip -6 rule add pref 12000 fwmark 0x10000/0xff0000 ipproto tcp dport 3306 lookup 22000 proto 86",
            "ip -6 rule add pref 12000 to 2001:db8::/32 fwmark 0x10000/0xff0000 ipproto udp dport 53 lookup 22000 proto 86",
        ], rules);
        // The table and its kill switch are as without --only; the source rules too (replies, rp_filter).
        var plain = MakePlan(new RouteRequest("eth1"));
        Assert.Equal(plain.Changes.OfType<AddRoute>(), plan.Changes.OfType<AddRoute>());
        Assert.Equal(plain.Changes.OfType<AddRule>().Where(c => c.Rule.Source is not null), plan.Changes.OfType<AddRule>().Where(c => c.Rule.Source is not null));
        // The guard knows the filters, and attaches no connect6 program.
        var guard = Assert.Single(plan.Changes.OfType<AttachEgressGuard>());
        Assert.Equal(Only("tcp:3306", "10.20.0.0/16", "2001:db8::/32@udp:53"), guard.Only);
        Assert.DoesNotContain("connect6", guard.Command);
    }

    [Fact]
    public void A_route_with_filters_is_another_route_than_one_without_or_with_others()
    {
        var host = PlanningTests.TypicalHost();
        var mechanism = new CgroupBpfMechanism();
        string Key(RouteRequest r) => Planner.Key("net:[1]", mechanism, RouteResolver.Resolve(r, host), r);
        var all = Key(new RouteRequest("eth1"));
        var mysql = Key(new RouteRequest("eth1", Only: Only("tcp:3306")));
        Assert.NotEqual(all, mysql);
        Assert.NotEqual(mysql, Key(new RouteRequest("eth1", Only: Only("tcp:5432"))));
        Assert.Equal(mysql, Key(new RouteRequest("eth1", Only: Only("tcp:3306", "tcp:3306"))));
    }

    [Fact]
    public void Netns_cannot_carry_filters_and_auto_passes_over_it()
    {
        var netns = Registry.Find("netns")!;
        Assert.False(netns.FiltersDestinations);
        Assert.All(Registry.All.Where(m => m.Name != "netns"), m => Assert.True(m.FiltersDestinations));
        var e = Assert.Throws<PlanException>(() => Via.Engine.MechanismChoice.Choose("netns", PlanningTests.TypicalHost(), new ProgramImage("/bin/true", false, false), only: true));
        Assert.Contains("--only needs a method", e.Message);
        Assert.Throws<PlanException>(() => Via.Engine.MechanismChoice.Choose("auto", PlanningTests.TypicalHost(), new ProgramImage("/bin/true", false, false), direct: true, only: true));
    }

    [Fact]
    public void The_journal_keeps_the_filters_of_the_route_and_of_its_guard()
    {
        var only = Only("tcp:3306", "10.20.0.0/16");
        var route = new ActiveRoute("t22000", "k", "net:[1]", DateTimeOffset.UnixEpoch, "eth1", null, 0x10000, 22000, "cgroup", "/sys/fs/cgroup/via/t22000", [], false,
            [new AttachEgressGuard("/sys/fs/cgroup/via/t22000", 3, "eth1") { Only = only }]) { Only = only };
        var back = JournalCodec.Decode(JournalCodec.Encode(route), "test");
        Assert.Equal(only, back.Only);
        Assert.Equal(only, Assert.IsType<AttachEgressGuard>(Assert.Single(back.Changes)).Only);
        Assert.Null(JournalCodec.Decode(JournalCodec.Encode(route with { Only = null }), "test").Only);
    }

    [Fact]
    public void With_dns_servers_the_servers_join_the_filters_and_without_the_host_resolver_is_kept()
    {
        var route = new RouteRequest("eth1", Only: Only("tcp:3306"));
        var servers = DnsRequest.Parse(["9.9.9.9,2620:fe::fe"], out _)!;
        Assert.Equal("2620:fe::fe/128@tcp:53,2620:fe::fe/128@udp:53,9.9.9.9/32@tcp:53,9.9.9.9/32@udp:53,tcp:3306", DnsPlanner.Through(route, servers).Only!.ToString());
        Assert.Same(route, DnsPlanner.Through(route, DnsRequest.Default));
        var without = new RouteRequest("eth1");
        Assert.Same(without, DnsPlanner.Through(without, servers));
    }

    [Fact]
    public void The_egress_program_with_filters_is_well_formed()
    {
        // Each filter's words and ports; encoding resolves every label (a missing one throws).
        var code = EgressGuardPrograms.Egress(3, 4, Only("tcp:3306", "10.20.0.0/16", "10.0.0.200/32@udp:53", "2001:db8::/33", "2001:db8::1@tcp:8000-8080"));
        Assert.NotEmpty(Via.Kernel.Bpf.Asm.Encode(code));
        // 10.0.0.200: its last byte has bit 31 of the little-endian word: loaded unsigned (mov32).
        Assert.Contains(code, i => i.OpCode == 0xb4 && unchecked((uint)i.Constant) == 0xc800000a);
        Assert.True(code.Length < 400);
    }
}
