using System.Net;
using System.Net.Sockets;
using Via.Kernel.Netlink;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Mechanisms.Changes;

namespace Via.Tests.Unit;

/// <summary>What 'via gc' chooses to remove (Collector's decisions, given what it read), without root or a kernel.</summary>
public sealed class CollectorTests
{
    private static readonly ProcessIdentity Live = new(100, 1), Dead = new(200, 1);
    private static bool Alive(ProcessIdentity p) => p == Live;

    private static ActiveRoute RouteOf(string id, uint table, string network = "net:[1]", string? cgroup = null, bool down = false, params ProcessIdentity[] users) =>
        new(id, "key|" + id, network, DateTimeOffset.UnixEpoch, "up2", null, 0x10000, table, "cgroup", cgroup ?? $"/sys/fs/cgroup/via/{id}", [.. users], down, []);

    private static readonly Membership Empty = new(false, null), Populated = new(true, null);

    [Fact]
    public void A_route_with_a_live_user_is_left_without_reading_its_cgroup()
    {
        var route = RouteOf("t22000", 22000, users: [Dead, Live]);
        Assert.Null(Collector.Judge(route, Alive, () => throw new InvalidOperationException("read the cgroup of a route in use")));
    }

    [Fact]
    public void A_route_whose_users_are_dead_is_left_while_processes_remain()
    {
        Assert.Null(Collector.Judge(RouteOf("t22000", 22000, users: [Dead]), Alive, () => Populated));
    }

    [Fact]
    public void A_route_with_no_user_and_no_process_is_removed_and_says_why()
    {
        var removal = Collector.Judge(RouteOf("t22000", 22000, users: [Dead]), Alive, () => Empty);
        Assert.NotNull(removal);
        Assert.Equal("route t22000 (dev up2, table 22000, mark 0x10000)", removal.What);
        Assert.Equal("no via and no process left in it", removal.Why);
        Assert.False(removal.Kept);
        Assert.Empty(removal.Failures);

        var down = Collector.Judge(RouteOf("t22001", 22001, down: true), Alive, () => Empty);
        Assert.Equal("taken down, no process left", down!.Why);
    }

    [Fact]
    public void A_route_held_by_standing_rules_is_never_collected()
    {
        var held = RouteOf("t22000", 22000, users: [Dead]) with { Rules = [new(new RuleSelector(SelectorKind.User, "alice"), "cli", 1000)] };
        // No process, no via: its rules are what keep it (the cgroup is not even looked at).
        Assert.True(Teardown.HasMembers(held with { Cgroup = "/nonexistent/via/t22000" }));
        Assert.Null(Collector.Judge(held, Alive, () => Teardown.Occupancy(held)));
    }

    [Fact]
    public void Only_this_state_directorys_rule_programs_no_journal_names_are_strays()
    {
        string mine = AttachRuleProgram.OwnerOf("/run/via"), theirs = AttachRuleProgram.OwnerOf("/run/via-test-x");
        Assert.NotEqual(mine, theirs);
        var attached = new List<AttachRuleProgram.Found>
        {
            new(1, "v" + mine + "0000000a", [1, 2, 3]),
            new(2, "v" + mine + "0000000b", [4, 5, 6]),
            new(3, "v" + theirs + "0000000c", [7, 8, 9]),
        };
        var strays = Collector.StrayRulePrograms(attached, new HashSet<string> { "v" + mine + "0000000a" }, mine).ToList();
        Assert.Equal([2u], strays.Select(s => s.Id));
    }

    [Fact]
    public void A_route_whose_membership_cannot_be_read_is_kept_not_removed()
    {
        var removal = Collector.Judge(RouteOf("t22000", 22000), Alive, () => new Membership(false, "cannot read /x/cgroup.events"));
        Assert.NotNull(removal);
        Assert.True(removal.Kept);
        Assert.Equal("cannot tell whether processes remain: cannot read /x/cgroup.events", removal.Why);
    }

    [Fact]
    public void Cgroups_no_journal_names_and_no_process_is_in_are_strays()
    {
        // Journals name their cgroup by its path under some mount: matched by name.
        var known = new[] { RouteOf("t22000", 22000, cgroup: "/run/via/cgroup2/via/t22000"), RouteOf("t22001", 22001) with { Cgroup = null } };
        string[] present = ["/sys/fs/cgroup/via/t22000", "/sys/fs/cgroup/via/t22005", "/sys/fs/cgroup/via/t22006", "/sys/fs/cgroup/via/doctor-42"];
        var busy = new HashSet<string> { "/sys/fs/cgroup/via/t22006" };
        Assert.Equal(["/sys/fs/cgroup/via/t22005", "/sys/fs/cgroup/via/doctor-42"], Collector.StrayCgroups(present, known, busy.Contains));
        Assert.Empty(Collector.StrayCgroups([], known, _ => false));
    }

    [Fact]
    public void Tagged_rules_and_routes_in_tables_no_journal_of_this_namespace_names_are_strays()
    {
        var known = new[] { RouteOf("t22000", 22000, "net:[1]"), RouteOf("t22001", 22001, "net:[2]") };
        var rules = new[]
        {
            new Rule(AddressFamily.InterNetwork, 12000, 22000, Mark: 0x10000, MarkMask: 0xff0000, Protocol: 86), // a journal's: kept
            new Rule(AddressFamily.InterNetwork, 12000, 22001, Mark: 0x20000, MarkMask: 0xff0000, Protocol: 86), // another namespace's journal: a stray here
            new Rule(AddressFamily.InterNetwork, 100, 22009, Mark: 0x30000, MarkMask: 0xff0000, Protocol: 4),    // not via's tag: never touched
        };
        var routes = new[]
        {
            new Route(AddressFamily.InterNetwork, 22000, RouteType.Unreachable, Protocol: 86),
            new Route(AddressFamily.InterNetwork, 22999, Gateway: IPAddress.Parse("10.2.0.1"), OutputLink: 3, Protocol: 86),
            new Route(AddressFamily.InterNetwork, 254, Gateway: IPAddress.Parse("10.1.0.1"), OutputLink: 2, Protocol: 3),
        };
        var links = new Dictionary<int, string> { [2] = "up1", [3] = "up2" };
        var strays = Collector.StrayRulesAndRoutes(86, known, "net:[1]", rules, routes, links).ToList();
        Assert.Equal<HostChange>([new AddRule(rules[1]), new AddRoute(routes[1], "up2")], strays);
        Assert.Equal("ip route add default via 10.2.0.1 dev up2 table 22999 proto 86", strays[1].Command);
    }

    [Fact]
    public void Stray_rules_are_deleted_most_selective_first()
    {
        // 'ip rule del fwmark M lookup T' takes the first rule with that mark and table, one with a
        // port too: the one with the port must go first, or the plain one would stay.
        var plain = new Rule(AddressFamily.InterNetwork, 12000, 22009, Mark: 0x10000, MarkMask: 0xff0000, Protocol: 86);
        var port = plain with { IpProtocol = 6, DestinationPorts = new PortRange(3306, 3306) };
        var both = port with { Destination = IPAddress.Parse("10.20.0.0"), DestinationLength = 16 };
        var strays = Collector.StrayRulesAndRoutes(86, [], "net:[1]", [plain, port, both], [], new Dictionary<int, string>()).ToList();
        Assert.Equal<HostChange>([new AddRule(both), new AddRule(port), new AddRule(plain)], strays);
        Assert.Equal("ip rule add pref 12000 to 10.20.0.0/16 fwmark 0x10000/0xff0000 ipproto tcp dport 3306 lookup 22009 proto 86", strays[0].Command);
    }
}
