using System.Runtime.ExceptionServices;
using Via.Cli.Commands.Demo;
using Via.Engine;
using Via.Kernel;
using Via.Mechanisms;
using Via.Planning;
using Via.Planning.Dns;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// The nft mechanism's own checks, beyond its contract row (<see cref="Contract.NftContract"/>): its
/// table is via's and named after the route, SNAT is made only where the kernel picked another
/// address, a killed via leaks nothing at any point and gc restores the host, and gc sweeps only
/// via's tables; and a route whose owner is a uid or gid, made through the engine, carries every
/// socket of it, in whatever cgroup. Own class state (tables 23600-23649).
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

    [RootFact]
    public void Via_run_with_user_still_matches_the_routes_cgroup()
    {
        var r = Via("run", "--method", "nft", "--dev", "up2", "--user", "nobody", "--dry-run", "--", "true");
        Assert.Equal(0, r.Code);
        Assert.Contains("socket cgroupv2 level 2", r.Out);
        Assert.DoesNotContain("meta skuid", r.Out);
    }

    /// <summary>
    /// The building block of standing per-user rules: a route whose owner is a uid (or a gid), made
    /// through the engine's API (not the CLI), carries every socket of that owner. A program of the
    /// owner's, started outside via and outside the route's cgroup, leaves by up2 with up2's address
    /// over TCP and UDP, both families; root's leaves by up1 meanwhile; leaving the route leaves nothing.
    /// </summary>
    [RootTheory]
    [InlineData("uid")]
    [InlineData("gid")]
    public void A_route_owned_by_a_uid_or_gid_carries_its_programs_outside_the_routes_cgroup(string kind)
    {
        const uint nobody = 65534;
        var owner = kind == "uid" ? RouteOwner.ByUid(nobody) : RouteOwner.ByGid(nobody);
        var before = HostSnapshot.Take(T);
        int isp1 = T.ServerLog(1).Count;
        string[] asNobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
        InTopology(() =>
        {
            var request = new SessionRequest(new RouteRequest("up2", Owner: owner), "nft", DnsRequest.Host, new ProgramImage("/bin/true", false, false));
            var session = RouteSession.Open(request, new SessionOutput(output.WriteLine, output.WriteLine), Fault.FromEnvironment());
            try
            {
                output.WriteLine(string.Join('\n', session.Route.Changes.Select(c => c.Command)));
                Assert.Equal(owner, session.Route.Owner);
                Assert.Contains(kind == "uid" ? "meta skuid 65534" : "meta skgid 65534", T.InHost(["nft", "list", "table", "inet", "via_" + session.Route.Id]).Out);
                // Not in the route's cgroup: the test's own.
                Assert.DoesNotContain(session.Route.Id, T.InHost([.. asNobody, "cat", "/proc/self/cgroup"]).Out);
                foreach (var (proto, server, answer) in new[] { ("tcp", Topology.Server4, "isp2 10.2.0.2"), ("udp", Topology.Server4, "isp2 10.2.0.2"), ("tcp", Topology.Server6, "isp2 fd02::2"), ("udp", Topology.Server6, "isp2 fd02::2") })
                {
                    var mine = T.InHost([.. asNobody, .. Clients.DotNet(proto, server)]);
                    Assert.True(mine.Out.Trim() == answer, $"{owner} {proto} to {server}: '{mine.Out.Trim()}' {mine.Err}");
                }
                Assert.Equal(isp1, T.ServerLog(1).Count); // not one of the owner's connections left by up1
                var others = T.InHost(Clients.DotNet("tcp", Topology.Server4)); // root: neither the uid nor the gid
                Assert.Equal("isp1 10.1.0.2", others.Out.Trim());
                var others6 = T.InHost(Clients.DotNet("udp", Topology.Server6));
                Assert.Equal("isp1 fd01::2", others6.Out.Trim());
            }
            finally
            {
                session.Leave();
            }
        });
        HostSnapshot.AssertUnchanged(before, T);
    }

    /// <summary>
    /// Runs <paramref name="action"/> as via's engine would run in the topology's host namespace: on a
    /// thread of its own that enters it (and ends there; the test's own threads never leave the root
    /// namespace), with the class's state directory, cgroup subtree and tables in the environment.
    /// </summary>
    private void InTopology(Action action)
    {
        var environment = fixture.State.Environment();
        var saved = environment.Keys.ToDictionary(k => k, Environment.GetEnvironmentVariable);
        Exception? failure = null;
        try
        {
            foreach (var (k, v) in environment) Environment.SetEnvironmentVariable(k, v);
            var thread = new Thread(() =>
            {
                try
                {
                    Namespaces.EnterNetwork($"/run/netns/{T.Host}");
                    action();
                }
                catch (Exception e)
                {
                    failure = e;
                }
            });
            thread.Start();
            thread.Join();
        }
        finally
        {
            foreach (var (k, v) in saved) Environment.SetEnvironmentVariable(k, v);
        }
        if (failure is not null) ExceptionDispatchInfo.Throw(failure);
    }
}
