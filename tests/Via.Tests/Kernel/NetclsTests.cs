using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// The netcls mechanism's own checks, beyond its contract row (<see cref="Contract.NetclsContract"/>):
/// the program is in the route's net_cls cgroup with via's classid, matched in the route's table, and
/// a killed via leaks nothing at any point (net_cls cgroups included) and gc restores the host. Own
/// class state (tables 23650-23699).
/// </summary>
public sealed class NetclsTests(TopologyFixture<NetclsTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<NetclsTests>>
{
    private Topology T => fixture.Topology;

    /// <summary>
    /// The net_cls cgroups in a class's subtree (<paramref name="subtree"/>), one line each. net_cls is
    /// host-wide, and via's mount of it may be private to the run: looked at through a mount of the test's own.
    /// </summary>
    public static string Leftovers(string subtree) =>
        Topology.Run("unshare", ["-m", "sh", "-c", $"d=$(mktemp -d); mount -t cgroup -o net_cls net_cls $d && ls -d $d/{subtree}/* 2>/dev/null | sed 's,.*/,net_cls ,'; umount $d; rmdir $d"]).Out;

    [RootFact]
    public void The_program_is_in_the_routes_net_cls_cgroup_with_vias_classid()
    {
        var r = Via.Run(T, "run", "--method", "netcls", "--dev", "up2", "--", "sh", "-c",
            "grep net_cls /proc/self/cgroup; nft list chain inet via_$(sed -n 's,^0::/.*/,,p' /proc/self/cgroup) out");
        output.WriteLine(r.Out + r.Err);
        Assert.Equal(0, r.Code);
        Assert.Matches($@"net_cls:/{fixture.State.Subtree}/t236\d\d", r.Out);
        Assert.Matches(@"meta cgroup \d+ meta mark set", r.Out);
        Assert.Equal("", Leftovers(fixture.State.Subtree));
    }

    [RootFact]
    public void Killed_at_any_point_it_leaks_nothing_and_gc_restores_the_host() =>
        CrashTests.KilledAtAnyPoint(T, output, ["--method", "netcls"], () => Leftovers(fixture.State.Subtree));
}
