using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// The nft mechanism's own checks, beyond its contract row (<see cref="Contract.NftContract"/>): its
/// table is via's and named after the route, SNAT is made only where the kernel picked another
/// address, a killed via leaks nothing at any point and gc restores the host, and gc sweeps only
/// via's tables. Own state directory and tables 23800-23849 (the nft collection runs one class at a time).
/// </summary>
[Collection("nft")]
public sealed class NftTests : IClassFixture<TopologyFixture>, IDisposable
{
    private const string State = "/run/via-test-nft";
    private readonly TopologyFixture _fixture;
    private readonly ITestOutputHelper _output;
    private readonly string _config = Path.Combine(Path.GetTempPath(), $"via-test-nft-{Guid.NewGuid():N}.conf");

    public NftTests(TopologyFixture fixture, ITestOutputHelper output)
    {
        _fixture = fixture;
        _output = output;
        File.WriteAllText(_config, "tables = 23800-23849\n");
    }

    private Topology T => _fixture.Topology;

    private string[] Env => [$"VIA_STATE_DIR={State}", $"VIA_CONFIG={_config}"];

    private (int Code, string Out, string Err) Via(params string[] args)
    {
        var r = T.InHost(["env", .. Env, ViaBinary.Path, .. args], Kernel.Via.Timeout);
        _output.WriteLine($"via {string.Join(' ', args)}: exit {r.Code}\n{r.Out}{r.Err}");
        return r;
    }

    private string Nft(string command) => T.InHost(["nft", .. command.Split(' ')]).Out;

    [RootFact]
    public void The_table_is_vias_and_snats_only_to_the_route_address()
    {
        var r = Via("run", "--method", "nft", "--dev", "up2", "--", "nft", "list", "ruleset");
        Assert.Equal(0, r.Code);
        Assert.Contains("table inet via_t238", r.Out);
        Assert.Contains("socket cgroupv2 level 2", r.Out);
        Assert.Contains("oifname \"up2\" ip saddr != 10.2.0.2 snat ip to 10.2.0.2", r.Out);
        Assert.Contains("oifname \"up2\" ip6 saddr != fd02::2 snat ip6 to fd02::2", r.Out);
        Assert.DoesNotContain("via_t", Nft("list tables"));
    }

    [RootFact]
    public void Dry_run_prints_the_table_and_the_setting()
    {
        var r = Via("run", "--method", "nft", "--dev", "up2", "--dry-run", "--", "true");
        Assert.Equal(0, r.Code);
        Assert.Contains("nft -f - <<< 'table inet via_t", r.Out);
        Assert.Contains("sysctl -w net.ipv4.conf.up2.src_valid_mark=1", r.Out);
    }

    [RootFact]
    public void Gc_sweeps_a_via_table_without_a_journal_and_no_other()
    {
        T.InHost(["nft", "add", "table", "inet", "via_t23899"]);
        T.InHost(["nft", "add", "table", "inet", "not_via"]);
        try
        {
            var gc = Via("gc");
            Assert.Equal(0, gc.Code);
            Assert.Contains("nftables table inet via_t23899", gc.Out);
            string tables = Nft("list tables");
            Assert.DoesNotContain("via_t23899", tables);
            Assert.Contains("not_via", tables);
        }
        finally
        {
            T.InHost(["nft", "delete", "table", "inet", "not_via"]);
            T.InHost(["sh", "-c", "nft delete table inet via_t23899 2>/dev/null; true"]);
        }
    }

    [RootFact]
    public void Killed_at_any_point_it_leaks_nothing_and_gc_restores_the_host() =>
        CrashTests.KilledAtAnyPoint(T, _output, Env, ["--method", "nft"], routes: "t238");

    [RootFact]
    public void Netcls_killed_at_any_point_it_leaks_nothing_and_gc_restores_the_host() =>
        CrashTests.KilledAtAnyPoint(T, _output, Env, ["--method", "netcls"], routes: "t238");

    [RootFact]
    public void Netcls_puts_the_program_in_the_routes_net_cls_cgroup_with_vias_classid()
    {
        var r = Via("run", "--method", "netcls", "--dev", "up2", "--", "sh", "-c", "grep net_cls /proc/self/cgroup; nft list chain inet via_$(sed -n 's,^0::/via/,,p' /proc/self/cgroup) out");
        Assert.Equal(0, r.Code);
        Assert.Matches(@"net_cls:/via/t238\d\d", r.Out);
        Assert.Matches(@"meta cgroup \d+ meta mark set", r.Out);
    }

    public void Dispose()
    {
        Via("gc");
        File.Delete(_config);
        try { Directory.Delete(State, recursive: true); } catch (DirectoryNotFoundException) { }
    }
}
