using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// The nft mechanism's own checks, beyond its contract row (<see cref="Contract.NftContract"/>): its
/// table is via's and named after the route, SNAT is made only where the kernel picked another
/// address, a killed via leaks nothing at any point and gc restores the host, and gc sweeps only
/// via's tables. Own class state (tables 23600-23649).
/// </summary>
public sealed class NftTests(TopologyFixture<NftTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<NftTests>>
{
    private Topology T => fixture.Topology;

    private (int Code, string Out, string Err) Via(params string[] args)
    {
        var r = Kernel.Via.Run(T, args);
        output.WriteLine($"via {string.Join(' ', args)}: exit {r.Code}\n{r.Out}{r.Err}");
        return r;
    }

    private string Nft(string command) => T.InHost(["nft", .. command.Split(' ')]).Out;

    [RootFact]
    public void The_table_is_vias_and_snats_only_to_the_route_address()
    {
        var r = Via("run", "--method", "nft", "--dev", "up2", "--", "nft", "list", "ruleset");
        Assert.Equal(0, r.Code);
        Assert.Contains("table inet via_t236", r.Out);
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
        T.InHost(["nft", "add", "table", "inet", "via_t23649"]);
        T.InHost(["nft", "add", "table", "inet", "not_via"]);
        try
        {
            var gc = Via("gc");
            Assert.Equal(0, gc.Code);
            Assert.Contains("nftables table inet via_t23649", gc.Out);
            string tables = Nft("list tables");
            Assert.DoesNotContain("via_t23649", tables);
            Assert.Contains("not_via", tables);
        }
        finally
        {
            T.InHost(["nft", "delete", "table", "inet", "not_via"]);
            T.InHost(["sh", "-c", "nft delete table inet via_t23649 2>/dev/null; true"]);
        }
    }

    [RootFact]
    public void Killed_at_any_point_it_leaks_nothing_and_gc_restores_the_host() =>
        CrashTests.KilledAtAnyPoint(T, output, ["--method", "nft"]);
}
