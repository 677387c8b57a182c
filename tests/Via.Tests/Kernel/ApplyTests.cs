using System.Text.Json;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// 'via apply' makes the host match via.conf: it brings up the file's routes, a second run changes
/// nothing, a route that left the file goes, a changed one is made again, a broken file changes
/// nothing and names its line, and '--check' says by its exit status whether anything would change.
/// </summary>
public sealed class ApplyTests(TopologyFixture<ApplyTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<ApplyTests>>
{
    private Topology T => fixture.Topology;

    private (int Code, string Out, string Err) Say((int Code, string Out, string Err) r)
    {
        output.WriteLine($"exit {r.Code}\n{r.Out}{r.Err}");
        return r;
    }

    /// <summary>The class's standing routes: name to (id, table).</summary>
    private Dictionary<string, (string Id, uint Table)> Standing() =>
        Via.Routes(T).Where(r => r.TryGetProperty("standing", out var s) && s.GetBoolean())
            .ToDictionary(r => r.GetProperty("name").GetString()!, r => (r.GetProperty("id").GetString()!, r.GetProperty("table").GetUInt32()));

    private const string Two = "[route a]\ndev = up2\n\n[route b]\ndev = up1\n";

    [RootFact]
    public void Apply_brings_up_the_file_changes_nothing_the_second_time_and_removes_what_left_it()
    {
        var before = HostSnapshot.Take(T);
        string flag = Path.Combine(Path.GetTempPath(), $"via-apply-{Guid.NewGuid():N}");
        try
        {
            fixture.State.Configure(Two);
            var check = Say(Via.Run(T, "apply", "--check"));
            Assert.Equal(1, check.Code);
            Assert.Contains("would make route a (dev=up2", check.Out);
            Assert.Contains("would make route b (dev=up1", check.Out);
            HostSnapshot.AssertUnchanged(before, T);

            var first = Say(Via.Run(T, "apply"));
            Assert.Equal(0, first.Code);
            Assert.Contains("done: make route a", first.Out);
            var routes = Standing();
            Assert.Equal(["a", "b"], routes.Keys.Order());
            var afterFirst = HostSnapshot.Take(T);

            // Again: nothing to change, and nothing changes.
            var second = Say(Via.Run(T, "apply"));
            Assert.Equal(0, second.Code);
            Assert.Contains("nothing to change", second.Out);
            HostSnapshot.AssertUnchanged(afterFirst, T);
            Assert.Equal(0, Say(Via.Run(T, "apply", "--check")).Code);
            var json = Say(Via.Run(T, "apply", "--check", "--json"));
            using (var doc = JsonDocument.Parse(json.Out))
                Assert.Empty(doc.RootElement.GetProperty("actions").EnumerateArray());

            // A launch into a's route leaves through it.
            var run = Say(Via.Run(T, ["run", "--route", "a", "--", .. Clients.DotNet("tcp", Topology.Server4)]));
            Assert.Equal((0, true), (run.Code, run.Out.Contains("isp2 10.2.0.2", StringComparison.Ordinal)));

            // A route of 'via run' beside them is not apply's: it stays through every change below.
            string wait = $"import os, time\nwhile not os.path.exists('{flag}'): time.sleep(0.05)";
            using var program = Via.Start(T, ["run", "--dev", "up2", "--table", $"{fixture.State.FirstTable + 40}", "--", Clients.Python, "-c", wait]);
            Via.WaitUntil(() => Via.Routes(T).Any(r => r.GetProperty("table").GetUInt32() == fixture.State.FirstTable + 40 && r.GetProperty("processes").GetArrayLength() == 1),
                "the program's own route");

            // b left the file: --check says so (exit 1), apply removes it and only it.
            fixture.State.Configure("[route a]\ndev = up2\n");
            check = Say(Via.Run(T, "apply", "--check"));
            Assert.Equal(1, check.Code);
            Assert.Contains($"would remove route b ({routes["b"].Id}, dev up1)", check.Out);
            var removal = Say(Via.Run(T, "apply"));
            Assert.Equal(0, removal.Code);
            Assert.Equal(["a"], Standing().Keys);
            Assert.Equal(routes["a"], Standing()["a"]);

            // a's definition changed: it is made again, with the file's table.
            uint table = fixture.State.FirstTable + 30;
            fixture.State.Configure($"[route a]\ndev = up2\ntable = {table}\n");
            check = Say(Via.Run(T, "apply", "--check"));
            Assert.Equal(1, check.Code);
            Assert.Contains("its definition changed", check.Out);
            Assert.Equal(0, Say(Via.Run(T, "apply")).Code);
            Assert.Equal(table, Standing()["a"].Table);
            Assert.Equal(0, Say(Via.Run(T, "apply", "--check")).Code);

            // The file without routes: apply removes them all; the program's route is still there.
            fixture.State.Configure();
            Assert.Equal(0, Say(Via.Run(T, "apply")).Code);
            Assert.Empty(Standing());
            Assert.Contains(Via.Routes(T), r => r.GetProperty("table").GetUInt32() == fixture.State.FirstTable + 40);
            File.WriteAllText(flag, "");
            Assert.True(program.WaitForExit(10000));
            HostSnapshot.AssertUnchanged(before, T);
        }
        finally
        {
            File.WriteAllText(flag, "");
            Via.Run(T, "down", "--all");
            File.Delete(flag);
            fixture.State.Configure();
        }
    }

    /// <summary>The pids of the keepers ('via __reap ID') of route <paramref name="id"/>.</summary>
    private static List<int> Keepers(string id)
    {
        var pids = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                var args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (args.Length >= 3 && args[1] == "__reap" && args[2] == id) pids.Add(pid);
            }
            catch (IOException) { }
        }
        return pids;
    }

    /// <summary>What the server saw of the python client run as uid and gid 1 (daemon) by ip netns exec and setpriv, not by via.</summary>
    private string AsDaemon()
    {
        var r = T.InHost(["setpriv", "--reuid", "1", "--regid", "1", "--clear-groups", .. Clients.PythonClient("tcp", Topology.Server4)]);
        Assert.True(r.Code == 0, r.Err);
        return r.Out.Trim();
    }

    /// <summary>The class's standing rules: selector to (route id, origin).</summary>
    private Dictionary<string, (string Route, string Origin)> Rules()
    {
        var r = Via.Run(T, "rule", "ls", "--json");
        Assert.True(r.Code == 0, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        return doc.RootElement.EnumerateArray().ToDictionary(e => e.GetProperty("selector").GetString()!, e => (e.GetProperty("route").GetString()!, e.GetProperty("origin").GetString()!));
    }

    [RootFact]
    public void Apply_puts_the_file_rules_on_their_routes_moves_them_and_deletes_those_that_left_it()
    {
        var before = HostSnapshot.Take(T);
        try
        {
            Assert.Equal("isp1 10.1.0.2", AsDaemon());
            // A rule made by hand is not apply's: it stays through all that follows.
            Assert.Equal(0, Say(Via.Run(T, "rule", "add", "--user", "bin", "--dev", "up2")).Code);
            fixture.State.Configure("[route a]\ndev = up2\n\n[rule]\nuser = daemon\nroute = a\n");
            var check = Say(Via.Run(T, "apply", "--check"));
            Assert.Equal(1, check.Code);
            Assert.Contains("would add rule user:daemon through route a", check.Out);
            Assert.Equal(0, Say(Via.Run(T, "apply")).Code);
            var rules = Rules();
            Assert.Equal((Standing()["a"].Id, "config"), rules["user:daemon"]);
            Assert.Equal("cli", rules["user:bin"].Origin);
            Assert.Equal("isp2 10.2.0.2", AsDaemon());
            var again = Say(Via.Run(T, "apply"));
            Assert.Equal((0, true), (again.Code, again.Out.Contains("nothing to change", StringComparison.Ordinal)));

            // The file puts the rule on a device instead of route a: it moves, and still routes.
            fixture.State.Configure("[route a]\ndev = up2\n\n[rule]\nuser = daemon\ndev = up2\n");
            check = Say(Via.Run(T, "apply", "--check"));
            Assert.Equal(1, check.Code);
            Assert.Contains("would move rule user:daemon", check.Out);
            Assert.Equal(0, Say(Via.Run(T, "apply")).Code);
            Assert.NotEqual(Standing()["a"].Id, Rules()["user:daemon"].Route);
            Assert.Equal("isp2 10.2.0.2", AsDaemon());
            Assert.Equal(0, Say(Via.Run(T, "apply", "--check")).Code);

            // The rule left the file: apply deletes it, and only it.
            fixture.State.Configure("[route a]\ndev = up2\n");
            Assert.Equal(0, Say(Via.Run(T, "apply")).Code);
            rules = Rules();
            Assert.False(rules.ContainsKey("user:daemon"));
            Assert.Equal("cli", rules["user:bin"].Origin);
            Assert.Equal("isp1 10.1.0.2", AsDaemon());

            Assert.Equal(0, Say(Via.Run(T, "rule", "del", "--user", "bin")).Code);
            fixture.State.Configure();
            Assert.Equal(0, Say(Via.Run(T, "apply")).Code);
            HostSnapshot.AssertUnchanged(before, T);
        }
        finally
        {
            Via.Run(T, "rule", "del", "--all");
            Via.Run(T, "down", "--all");
            fixture.State.Configure();
        }
    }

    [RootFact]
    public void A_broken_file_changes_nothing_and_names_its_file_and_line()
    {
        try
        {
            fixture.State.Configure("[route a]\ndev = up2\n");
            Assert.Equal(0, Say(Via.Run(T, "apply")).Code);
            var before = HostSnapshot.Take(T);
            // Line 1 is the tables; b (line 4) has no dev; a would be left as it is, and c would be made: neither happens.
            fixture.State.Configure("[route a]\ndev = up2\n[route b]\ngateway = 10.1.0.1\n[route c]\ndev = up1\n");
            foreach (var args in new[] { new[] { "apply" }, ["apply", "--check"], ["up", "c"], ["run", "--route", "c", "--", "true"] })
            {
                var r = Say(Via.Run(T, args));
                Assert.Equal(125, r.Code);
                Assert.Contains($"{fixture.State.Config}:4: route 'b' has no 'dev'", r.Err);
                Assert.Single(r.Err.Trim().Split('\n'));
                HostSnapshot.AssertUnchanged(before, T);
            }
            fixture.State.Configure("[route a]\ndev = up2\nmethod = magic\n");
            var bad = Say(Via.Run(T, "apply"));
            Assert.Equal(125, bad.Code);
            Assert.Contains($"{fixture.State.Config}:4: unknown method 'magic'", bad.Err);
            HostSnapshot.AssertUnchanged(before, T);
        }
        finally
        {
            Via.Run(T, "down", "--all");
            fixture.State.Configure();
        }
    }

    [RootFact]
    public void What_the_kernel_dropped_from_a_standing_route_is_put_back_by_its_keeper()
    {
        var before = HostSnapshot.Take(T);
        try
        {
            fixture.State.Configure("[route a]\ndev = up2\n");
            Assert.Equal(0, Say(Via.Run(T, "apply")).Code);
            var up = Standing()["a"];
            int repairs = Via.Routes(T).Single(r => r.GetProperty("id").GetString() == up.Id).GetProperty("repairs").GetInt32();
            // up2 goes down and comes back: the kernel drops the route's table entries through it. No
            // program's via watches a standing route: its keeper (a reaper that stays while it stands) does.
            Topology.Ip("-n", T.Host, "link", "set", "up2", "down");
            Topology.Ip("-n", T.Host, "link", "set", "up2", "up");
            Restore();
            Via.WaitUntil(() => Via.Routes(T).Single(r => r.GetProperty("id").GetString() == up.Id).GetProperty("repairs").GetInt32() > repairs
                && Via.Run(T, "apply", "--check").Code == 0, "the keeper to put back the standing route's table", TimeSpan.FromSeconds(20));
            Assert.Equal(up, Standing()["a"]);
            // Its keeper killed: 'via apply' starts another.
            int keeper = Assert.Single(Keepers(up.Id));
            global::Via.Kernel.Processes.Exec.Signal(keeper, 9);
            Via.WaitUntil(() => Keepers(up.Id).Count == 0, "the keeper to die");
            var check = Say(Via.Run(T, "apply", "--check"));
            Assert.Equal(1, check.Code);
            Assert.Contains($"would start the keeper of route a ({up.Id}", check.Out);
            Assert.Equal(0, Say(Via.Run(T, "apply")).Code);
            Assert.Single(Keepers(up.Id));
            Assert.Equal(0, Say(Via.Run(T, "apply", "--check")).Code);
            var run = Say(Via.Run(T, ["run", "--route", "a", "--", .. Clients.DotNet("tcp", Topology.Server4)]));
            Assert.Equal((0, true), (run.Code, run.Out.Contains("isp2 10.2.0.2", StringComparison.Ordinal)));
            fixture.State.Configure();
            Assert.Equal(0, Say(Via.Run(T, "apply")).Code);
            // The topology's own routes were re-made by the test (their order in a dump may differ): via's are compared.
            HostSnapshot.AssertUnchanged(before, T, viaRoutesOnly: true);
        }
        finally
        {
            Restore();
            Via.Run(T, "down", "--all");
            fixture.State.Configure();
        }
    }

    /// <summary>up2 as the topology made it, after it went down: its IPv6 address (flushed with the link) and its defaults in table 200, as a DHCP client would put them back.</summary>
    private void Restore()
    {
        Topology.Ip("-n", T.Host, "link", "set", "up2", "up");
        Topology.Ip("-n", T.Host, "addr", "replace", "fd02::2/64", "dev", "up2", "nodad");
        Topology.Ip("-n", T.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200");
        Topology.Ip("-n", T.Host, "-6", "route", "replace", "default", "via", "fd02::1", "dev", "up2", "table", "200");
    }

    [RootFact]
    public void A_route_the_host_cannot_make_is_reported_and_the_others_are_made()
    {
        var before = HostSnapshot.Take(T);
        try
        {
            fixture.State.Configure("[route gone]\ndev = nosuch0\n\n[route a]\ndev = up2\n");
            var r = Say(Via.Run(T, "apply"));
            Assert.Equal(125, r.Code);
            Assert.Contains("could not make route gone", r.Err);
            Assert.Contains("nosuch0", r.Err);
            Assert.Contains("done: make route a", r.Out);
            Assert.Equal(["a"], Standing().Keys);
            // Still to do: --check says so.
            var check = Say(Via.Run(T, "apply", "--check"));
            Assert.Equal(1, check.Code);
            Assert.Contains("would make route gone", check.Out);
            fixture.State.Configure();
            Assert.Equal(0, Say(Via.Run(T, "apply")).Code);
            HostSnapshot.AssertUnchanged(before, T);
        }
        finally
        {
            Via.Run(T, "down", "--all");
            fixture.State.Configure();
        }
    }
}
