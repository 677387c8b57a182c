using System.Net;
using Via.Mechanisms;
using Via.Planning;
using Via.Planning.Dns;

namespace Via.Tests.Unit;

/// <summary>via.conf's sections: named routes and standing rules, read whole, and every bad line refused with FILE:LINE: reason.</summary>
public sealed class ViaConfigTests
{
    private const string File = "/etc/via/via.conf";

    private const string Sample = """
        # via's numbers
        tables = 22000-22099

        [route work]
        dev = eth1
        gateway = 192.168.1.1      # optional
        source = 192.168.1.77
        dns = 9.9.9.9,2620:fe::fe
        method = cgroup
        table = 22010

        [route wg-home]
        dev = wg0

        [rule]
        user = alice
        route = work

        [rule]
        dport = TCP:3306
        dev = eth1
        """;

    [Fact]
    public void Settings_routes_and_rules_are_read_with_their_lines()
    {
        var c = ViaConfig.Parse(Sample, File);
        Assert.Equal((22000u, 100u, File), (c.Settings.FirstTable, c.Settings.Count, c.Source));
        Assert.Equal(["work", "wg-home"], c.Routes.Select(r => r.Name));
        var work = c.Route("work")!;
        Assert.Equal(("eth1", IPAddress.Parse("192.168.1.1"), IPAddress.Parse("192.168.1.77"), "cgroup", (uint?)22010, 4),
            (work.Device, work.Gateway, work.Source, work.Method, work.Table, work.Line));
        Assert.Equal(DnsRequest.Choice.Servers, work.Dns.Kind);
        Assert.Equal([IPAddress.Parse("9.9.9.9"), IPAddress.Parse("2620:fe::fe")], work.Dns.Servers);
        var home = c.Route("wg-home")!;
        Assert.Equal(("wg0", (IPAddress?)null, (IPAddress?)null, "auto", (uint?)null, DnsRequest.Default), (home.Device, home.Gateway, home.Source, home.Method, home.Table, home.Dns));
        Assert.Equal([new ConfigRule(new RuleSelector(SelectorKind.User, "alice"), "work", null, 15), new ConfigRule(new RuleSelector(SelectorKind.Dport, "tcp:3306"), null, "eth1", 19)], c.Rules);
        Assert.Null(c.Route("nope"));
    }

    [Fact]
    public void A_route_is_its_own_request_and_definition()
    {
        var work = ViaConfig.Parse(Sample, File).Route("work")!;
        Assert.Equal(new RouteRequest("eth1", IPAddress.Parse("192.168.1.1"), IPAddress.Parse("192.168.1.77"), 22010, Name: "work"), work.Request);
        Assert.Equal("dev=eth1 gateway=192.168.1.1 source=192.168.1.77 method=cgroup table=22010", work.Definition);
        // DNS is given to each launch from the file: changing it needs no new route.
        var otherDns = ViaConfig.Parse(Sample.Replace("dns = 9.9.9.9,2620:fe::fe", "dns = 1.1.1.1"), File).Route("work")!;
        Assert.Equal(work.Definition, otherDns.Definition);
        var otherGateway = ViaConfig.Parse(Sample.Replace("gateway = 192.168.1.1", "gateway = 192.168.1.2"), File).Route("work")!;
        Assert.NotEqual(work.Definition, otherGateway.Definition);
    }

    [Fact]
    public void Settings_alone_still_parse_as_before()
    {
        Assert.Equal(22000u, Settings.Parse(Sample, File).FirstTable);
        Assert.Empty(ViaConfig.Parse("priority = 9000\n", File).Routes);
    }

    [Theory]
    [InlineData("[route work]\ngateway = 10.0.0.1\n", 1, "route 'work' has no 'dev'")]
    [InlineData("[route work]\ndev = eth1\n[route work]\ndev = eth2\n", 3, "route 'work' is defined twice (first at line 1)")]
    [InlineData("[route Work]\ndev = eth1\n", 1, "'Work' is not a route name")]
    [InlineData("[route t22000]\ndev = eth1\n", 1, "reads as a table number or a route id")]
    [InlineData("[route 42]\ndev = eth1\n", 1, "reads as a table number")]
    [InlineData("[route]\ndev = eth1\n", 1, "a route needs a name")]
    [InlineData("[routes work]\n", 1, "unknown section [routes]")]
    [InlineData("[route work\n", 1, "is not a section")]
    [InlineData("[rule x]\n", 1, "a rule has no name")]
    [InlineData("[route work]\ndev = eth1\ncolour = blue\n", 3, "unknown key 'colour' in route 'work'")]
    [InlineData("[route work]\ndev = eth1\ndev = eth2\n", 3, "'dev' is set twice in route 'work' (first at line 2)")]
    [InlineData("[route work]\ndev = eth1\ngateway = 10.2.0\n", 3, "gateway '10.2.0' is not an IPv4 or IPv6 address")]
    [InlineData("[route work]\ndev = eth1\nsource = banana\n", 3, "source 'banana' is not an IPv4 or IPv6 address")]
    [InlineData("[route work]\ndev = eth1\ndns = 9.9.9.9,,1.1.1.1\n", 3, "has an empty item")]
    [InlineData("[route work]\ndev = eth1\nmethod = magic\n", 3, "unknown method 'magic'")]
    [InlineData("[route work]\ndev = eth1\ntable = 254\n", 3, "table '254' is not a routing table number")]
    [InlineData("[route work]\ndev = eth1\ntable =\n", 3, "'table' has no value")]
    [InlineData("[route work]\ndev = eth1/2\n", 2, "dev 'eth1/2' is not an interface name")]
    [InlineData("dev = eth1\n", 1, "'dev' belongs in a section ([route NAME] or [rule])")]
    [InlineData("[rule]\nuser = alice\ngroup = staff\ndev = eth1\n", 3, "a rule has one selector: it has 'user' already (line 2)")]
    [InlineData("[rule]\nuser = alice\nroute = work\ndev = eth1\n", 4, "not both")]
    [InlineData("[rule]\ndev = eth1\n", 1, "a rule needs a selector")]
    [InlineData("[rule]\nuser = alice\n", 1, "needs a way out")]
    [InlineData("[rule]\ncomm = a-name-far-too-long-for-comm\ndev = eth1\n", 2, "longer than 15 bytes")]
    [InlineData("[rule]\ndport = sctp:9\ndev = eth1\n", 2, "is not PROTO:PORT")]
    [InlineData("[route work]\ndev = eth1\n\n[rule]\nuser = alice\nroute = home\n", 4, "rule user:alice names route 'home', which the file does not define (it has: work)")]
    [InlineData("[route work]\ndev = eth1\n[rule]\nuser = alice\nroute = work\npriority = 7\n", 6, "unknown key 'priority' in a rule")]
    public void A_bad_line_is_refused_with_the_file_and_line(string text, int line, string message)
    {
        var e = Assert.Throws<PlanException>(() => ViaConfig.Parse(text, File));
        Assert.StartsWith($"{File}:{line}: ", e.Message);
        Assert.Contains(message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_bad_line_anywhere_refuses_the_settings_too()
    {
        // Nothing uses half a file: the settings of a file whose routes are malformed are refused as well.
        Assert.StartsWith($"{File}:4: ", Assert.Throws<PlanException>(() => Settings.Parse("tables = 22000-22010\n[route work]\ndev = eth1\nbogus = 1\n", File)).Message);
    }
}
