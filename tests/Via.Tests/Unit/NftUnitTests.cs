using System.Net;
using Via.Mechanisms;
using Via.Mechanisms.Cgroup;
using Via.Mechanisms.Nft;
using Via.Planning;

namespace Via.Tests.Unit;

/// <summary>The nft mechanism's rule text for each kind of route owner, the owner's text form, and what the planner makes of an owner.</summary>
public sealed class NftUnitTests
{
    private static TagRequest Request(RouteOwner owner, string cgroup = "/sys/fs/cgroup/unified/via/t23800") =>
        new("t23800", 0x10000, new HostView([], [], [], [], ["/sys/fs/cgroup/unified"]), 3, cgroup, Device: "eth1",
            Source4: IPAddress.Parse("10.2.0.2"), Source6: IPAddress.Parse("2001:db8:2::2"), Owner: owner);

    [Theory]
    [InlineData(OwnerKind.Cgroup, 0u, "socket cgroupv2 level 2 \"unified/via/t23800\"")]
    [InlineData(OwnerKind.Uid, 1000u, "meta skuid 1000")]
    [InlineData(OwnerKind.Gid, 100u, "meta skgid 100")]
    [InlineData(OwnerKind.Uid, 0u, "meta skuid 0")]
    public void The_out_chain_matches_the_routes_owner(OwnerKind kind, uint id, string match)
    {
        var request = Request(new RouteOwner(kind, id));
        Assert.Equal(match, NftRules.OwnerMatch(request));
        string body = NftRules.Body(NftRules.OwnerMatch(request), request.Mark, request.Device, request.Source4, request.Source6);
        // The owner's packets get the route's mark and their connection the same conntrack mark; the rest of the table is the same for every owner.
        // A connection's packets after its first are marked by the conntrack mark, tested before the owner.
        Assert.Contains($"\n ct mark 0x10000 meta mark set 0x10000 accept\n {match} meta mark set 0x10000 ct mark set 0x10000\n", body);
        Assert.Contains(" meta mark 0x10000 oifname \"eth1\" ip saddr != 10.2.0.2 snat ip to 10.2.0.2\n", body);
        Assert.Contains(" iifname \"eth1\" ct mark 0x10000 meta mark set 0x10000\n", body);
    }

    [Fact]
    public void A_cgroup_of_a_pure_cgroup2_host_is_named_below_sys_fs_cgroup()
    {
        var request = Request(RouteOwner.ByCgroup, "/sys/fs/cgroup/via/t23800") with { Host = new HostView([], [], [], [], ["/sys/fs/cgroup"]) };
        Assert.Equal("socket cgroupv2 level 2 \"via/t23800\"", NftRules.OwnerMatch(request));
    }

    [Theory]
    [InlineData("cgroup")]
    [InlineData("uid:0")]
    [InlineData("uid:65534")]
    [InlineData("gid:100")]
    public void An_owner_reads_back_from_its_text(string text) => Assert.Equal(text, RouteOwner.Parse(text).ToString());

    [Theory]
    [InlineData("uid:")]
    [InlineData("uid:-1")]
    [InlineData("user:1000")]
    [InlineData("uid:1000x")]
    [InlineData("gid:4294967296")]
    public void A_damaged_owner_is_refused(string text) => Assert.Throws<FormatException>(() => RouteOwner.Parse(text));

    [Fact]
    public void The_default_owner_is_the_routes_cgroup_and_journals_nothing()
    {
        Assert.True(default(RouteOwner).IsCgroup);
        Assert.Equal(RouteOwner.ByCgroup, RouteOwner.Parse(null));
        Assert.Equal(RouteOwner.ByCgroup, new RouteRequest("eth1").Owner);
    }

    [Fact]
    public void Only_a_mechanism_that_matches_owners_is_given_a_uid_route()
    {
        var host = PlanningTests.TypicalHost();
        var request = new RouteRequest("eth1", Owner: RouteOwner.ByUid(1000));
        var e = Assert.Throws<PlanException>(() =>
            Planner.Make(request, RouteResolver.Resolve(request, host), host, new CgroupBpfMechanism(), NumberSpace.Default.At(0), "r1"));
        Assert.Contains("method cgroup routes only the programs via starts, not every socket of uid:1000", e.Message);
        Assert.Contains("(nft)", e.Message);
        Assert.True(Registry.Find("nft")!.MatchesOwners);
        Assert.All(Registry.All.Where(m => m.Name != "nft"), m => Assert.False(m.MatchesOwners));
    }

    [Fact]
    public void Two_owners_are_two_routes_and_a_cgroup_routes_key_is_as_before()
    {
        var host = PlanningTests.TypicalHost();
        var cgroup = new RouteRequest("eth1");
        var resolved = RouteResolver.Resolve(cgroup, host);
        string key = Planner.Key("net:[1]", "nft", resolved, cgroup);
        Assert.Equal(string.Join('|', "net:[1]", "nft", "eth1", resolved.Gateway4, resolved.Source4, resolved.Gateway6, resolved.Source6, ""), key);
        string uid = Planner.Key("net:[1]", "nft", resolved, cgroup with { Owner = RouteOwner.ByUid(1000) });
        string gid = Planner.Key("net:[1]", "nft", resolved, cgroup with { Owner = RouteOwner.ByGid(1000) });
        Assert.Equal(key + "|uid:1000", uid);
        Assert.Equal(3, new[] { key, uid, gid }.Distinct().Count());
    }
}
