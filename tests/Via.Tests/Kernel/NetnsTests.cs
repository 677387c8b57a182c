using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// The netns mechanism beyond the contract (<see cref="Contract.NetnsContract"/>): the program is in
/// a namespace of its own, everything it made is gone after the run, forwarding on the uplink comes
/// back to what it was (also with two routes sharing it), and the kill-point crash test of the cgroup
/// mechanism's <see cref="CrashTests"/>. Own class state (tables 23700-23749).
/// </summary>
public sealed class NetnsTests(TopologyFixture<NetnsTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<NetnsTests>>
{
    private Topology T => fixture.Topology;

    private (int Code, string Out, string Err) Via(string? fault, params string[] args)
    {
        var r = Kernel.Via.RunWith(T, fault is null ? [] : [$"VIA_FAULT={fault}"], args);
        output.WriteLine($"via {string.Join(' ', args)}{(fault is null ? "" : $" (fault {fault})")}: exit {r.Code}\n{r.Out}{r.Err}");
        return r;
    }

    /// <summary>What the netns mechanism makes that could be left in the host namespace: veths named via-t*, nft
    /// tables named via_*, namespace files under the state directory, and up2's forwarding switched on.</summary>
    public static string Leftovers(Topology t, string state)
    {
        string links = t.InHost(["sh", "-c", "ip -o link show | grep -o 'via-t[0-9p]*' || true"]).Out;
        string tables = t.InHost(["sh", "-c", "nft list tables | grep via_ || true"]).Out;
        string dir = Path.Combine(state, "netns");
        string files = Directory.Exists(dir) ? string.Join(',', Directory.EnumerateFiles(dir)) : "";
        string forwarding = t.InHost(["sysctl", "-n", "net.ipv4.conf.up2.forwarding"]).Out.Trim() == "1" ? "up2 forwarding on" : "";
        string forwarding6 = t.InHost(["sh", "-c", "cat /proc/sys/net/ipv6/conf/up2/force_forwarding 2>/dev/null || echo 0"]).Out.Trim() == "1" ? "up2 force_forwarding on" : "";
        return links + tables + files + forwarding + forwarding6;
    }

    private string Objects() =>
        T.InHost(["sh", "-c", "{ ip rule; ip -6 rule; } | grep -w 'proto 86'; ip route show table all proto 86; ip -6 route show table all proto 86"]).Out
        + Leftovers(T, fixture.State.StateDirectory) + string.Join(',', fixture.State.Journals());

    [RootFact]
    public void The_program_runs_in_a_namespace_of_its_own_and_everything_goes_after()
    {
        string here = T.InHost(["readlink", "/proc/self/ns/net"]).Out.Trim();
        var r = Via(null, "run", "--method", "netns", "--dev", "up2", "--", "sh", "-c", "readlink /proc/self/ns/net; ip -o link show | grep -c via0; " + Kernel.Via.ProbeLine("tcp", Topology.Server4));
        Assert.Equal(0, r.Code);
        var lines = r.Out.Trim().Split('\n');
        Assert.NotEqual(here, lines[0]);
        Assert.Equal("1", lines[1]);
        Assert.Equal("isp2 10.2.0.2", lines[2]);
        Kernel.Via.WaitUntil(() => Objects() == "", "nothing of the route to be left: " + Objects());
    }

    [RootFact]
    public void Two_routes_share_the_uplinks_forwarding_and_the_last_one_restores_it()
    {
        // Two routes on up2 (different tables): forwarding stays on until both have left.
        using var first = Kernel.Via.Start(T, ["run", "--method", "netns", "--dev", "up2", "--table", "23710", "--", "sh", "-c", "read line"], input: true);
        try
        {
            Kernel.Via.WaitUntil(() => T.InHost(["sysctl", "-n", "net.ipv4.conf.up2.forwarding"]).Out.Trim() == "1" && T.InHost(["ip", "link", "show", "via-t23710"]).Code == 0, "the first route to be up");
            var second = Via(null, ["run", "--method", "netns", "--dev", "up2", "--table", "23711", "--", .. Clients.DotNet("tcp", Topology.Server4)]);
            Assert.Equal(0, second.Code);
            Assert.Equal("isp2 10.2.0.2", second.Out.Trim());
            Assert.Equal("1", T.InHost(["sysctl", "-n", "net.ipv4.conf.up2.forwarding"]).Out.Trim()); // the first still needs it
        }
        finally
        {
            first.StandardInput.WriteLine();
            first.StandardInput.Close();
            if (!first.WaitForExit(30000)) first.Kill(entireProcessTree: true);
            first.WaitForExit();
            Via(null, "gc");
        }
        Kernel.Via.WaitUntil(() => Objects() == "", "nothing of either route to be left: " + Objects());
    }

    /// <summary>The kill points of the netns plan, as <see cref="CrashTests"/> has them for the cgroup mechanism: after the journal,
    /// each change applied, the exit, each change undone; then 'via gc' restores the host, netns objects and forwarding included.</summary>
    [RootFact]
    public void Killed_at_any_point_it_leaks_nothing_and_gc_restores_the_host()
    {
        var json = Via(null, "run", "--method", "netns", "--dev", "up2", "--dry-run", "--json", "--", "true");
        using var doc = System.Text.Json.JsonDocument.Parse(json.Out);
        int steps = doc.RootElement.GetProperty("steps").GetArrayLength();
        Assert.True(steps >= 18, $"plan has {steps} steps");
        var stages = new List<string> { "journal" };
        for (int i = 1; i <= steps; i++) stages.Add($"apply:{i}");
        stages.Add("exit");
        for (int i = 1; i <= steps; i++) stages.Add($"undo:{i}");
        foreach (var stage in stages)
        {
            var before = HostSnapshot.Take(T);
            string objects = Objects();
            int isp1 = T.ServerLog(1).Count;
            var r = Via(stage, ["run", "--method", "netns", "--dev", "up2", "--", .. Clients.DotNet("tcp", Topology.Server4)]);
            Assert.True(r.Code == 128 + 9, $"{stage}: via should have died of SIGKILL there, exited {r.Code}");
            bool launched = stage is "exit" || stage.StartsWith("undo", StringComparison.Ordinal);
            Assert.True((launched ? "isp2 10.2.0.2" : "") == r.Out.Trim(), $"{stage}: program said '{r.Out.Trim()}'");
            Assert.True(isp1 == T.ServerLog(1).Count, $"{stage}: a connection reached isp1");
            var gc = Via(null, "gc");
            Assert.True(gc.Code == 0, $"{stage}: via gc exited {gc.Code}: {gc.Err}");
            HostSnapshot.AssertUnchanged(before, T);
            // The veth pair goes with the namespace, which the kernel destroys asynchronously.
            Kernel.Via.WaitUntil(() => Objects() == objects, $"{stage}: the host's netns objects to be as they were: {Objects()}");
        }
    }
}
