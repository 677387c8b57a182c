using Via.Engine;
using Via.Mechanisms;
using Via.Planning;

namespace Via.Tests.Unit;

/// <summary>What 'via apply' would do, from the file and via's routes: only standing named routes of this namespace are its own.</summary>
public sealed class ApplyPlannerTests
{
    private const string Here = "net:[4026531840]";

    private static ActiveRoute Route(string id, string? name, bool standing, string? definition, string ns = Here) =>
        new(id, "key", ns, DateTimeOffset.UnixEpoch, "eth1", null, 0x10000, uint.Parse(id[1..], System.Globalization.CultureInfo.InvariantCulture),
            "cgroup", "/via/" + id, [], false, [])
        { Name = name, Standing = standing, Definition = definition };

    private static readonly SessionOutput Quiet = new(_ => { }, null);

    private static List<(string Verb, string Subject)> Plan(string file, IEnumerable<ActiveRoute> routes, Func<ActiveRoute, bool>? holds = null, Func<ActiveRoute, string?>? drift = null) =>
        [.. ApplyPlanner.Routes(ViaConfig.Parse(file, "via.conf"), NamedRoutes.Standing(routes, Here), holds ?? (_ => true), drift ?? (_ => null), Quiet, Fault.FromEnvironment())
            .Select(a => (a.Verb, a.Subject))];

    private const string Def = "dev=eth1 gateway=- source=- method=auto table=-";

    [Fact]
    public void Missing_routes_come_up_changed_ones_are_remade_and_those_that_left_go()
    {
        var actions = Plan("[route a]\ndev = eth1\n[route b]\ndev = eth2\n[route same]\ndev = eth1\n", [
            Route("t22001", "b", true, Def),          // b's definition changed (eth2 now)
            Route("t22002", "gone", true, Def),       // left the file
            Route("t22003", "same", true, Def),       // as in the file: nothing
        ]);
        Assert.Equal([("up", "route a"), ("remake", "route b"), ("down", "route gone")], actions);
    }

    [Fact]
    public void Nothing_but_standing_named_routes_of_this_namespace_is_touched()
    {
        var actions = Plan("", [
            Route("t22001", null, false, null),                     // via run --dev
            Route("t22002", "work", false, Def),                    // via run --route work, not standing
            Route("t22003", "work", true, Def, "net:[4026532999]"), // standing, in another namespace
        ]);
        Assert.Empty(actions);
    }

    [Fact]
    public void A_standing_route_whose_rules_are_gone_is_remade_and_one_the_kernel_trimmed_is_repaired()
    {
        string file = "[route a]\ndev = eth1\n[route b]\ndev = eth1\n";
        var actions = Plan(file, [Route("t22001", "a", true, Def), Route("t22002", "b", true, Def)],
            holds: r => r.Name != "a", drift: r => r.Name == "b" ? "3 of its objects are missing" : null);
        Assert.Equal([("remake", "route a"), ("repair", "route b")], actions);
    }

    [Fact]
    public void A_second_plan_after_the_first_has_nothing_to_do()
    {
        string file = "[route a]\ndev = eth1\n";
        Assert.Equal([("up", "route a")], Plan(file, []));
        Assert.Empty(Plan(file, [Route("t22001", "a", true, ViaConfig.Parse(file, "via.conf").Routes[0].Definition)]));
    }
}
