using System.Text.Json;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// Routes of via.conf by name: 'via up NAME' keeps one up without a program, 'via run --route NAME'
/// joins it (the same route, no set-up), it stays after its programs and 'via gc', and 'via down NAME'
/// removes it and everything it made.
/// </summary>
public sealed class NamedRouteTests(TopologyFixture<NamedRouteTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<NamedRouteTests>>
{
    private Topology T => fixture.Topology;

    private const string Work = "[route work]\ndev = up2\n";

    private (int Code, string Out, string Err) Say((int Code, string Out, string Err) r)
    {
        output.WriteLine($"exit {r.Code}\n{r.Out}{r.Err}");
        return r;
    }

    private static JsonElement Single(Topology t) => Assert.Single(Via.Routes(t));

    [RootFact]
    public void Attach_and_rule_add_take_a_route_of_the_file_by_name()
    {
        var before = HostSnapshot.Take(T);
        fixture.State.Configure(Work);
        // A process via did not start ('ip netns exec' execs sleep: the same pid).
        var start = new System.Diagnostics.ProcessStartInfo("ip") { UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", T.Host, "sleep", "600" }) start.ArgumentList.Add(a);
        using var sleeper = System.Diagnostics.Process.Start(start)!;
        string pid = sleeper.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            Assert.Equal(0, Say(Via.Run(T, "up", "work")).Code);
            string id = Single(T).GetProperty("id").GetString()!;

            // An option beside --route, or a name the file does not have: refused, nothing changed.
            var snapshot = HostSnapshot.Take(T);
            var both = Say(Via.Run(T, "attach", "--pid", pid, "--route", "work", "--dev", "up1"));
            Assert.Equal(125, both.Code);
            Assert.Contains("--route work names the route; --dev cannot be given with it", both.Err);
            var unknown = Say(Via.Run(T, "rule", "add", "--user", "daemon", "--route", "nope"));
            Assert.Equal(125, unknown.Code);
            Assert.Contains("no route 'nope' in via.conf", unknown.Err);
            HostSnapshot.AssertUnchanged(snapshot, T);

            // Both go on the standing route: the same id.
            var attach = Say(Via.Run(T, "attach", "--pid", pid, "--route", "work", "--json"));
            Assert.Equal(0, attach.Code);
            using (var doc = JsonDocument.Parse(attach.Out)) Assert.Equal(id, doc.RootElement.GetProperty("route").GetString());
            var rule = Say(Via.Run(T, "rule", "add", "--user", "daemon", "--route", "work", "--json"));
            Assert.Equal(0, rule.Code);
            using (var doc = JsonDocument.Parse(rule.Out)) Assert.Equal(id, doc.RootElement.GetProperty("route").GetString());
            Assert.Equal(id, Single(T).GetProperty("id").GetString());

            // Detached and its rule deleted, the route still stands; down removes it.
            Assert.Equal(0, Say(Via.Run(T, "detach", "--pid", pid)).Code);
            Assert.Equal(0, Say(Via.Run(T, "rule", "del", "--user", "daemon")).Code);
            Assert.Equal(id, Single(T).GetProperty("id").GetString());
            Assert.Equal(0, Say(Via.Run(T, "down", "work")).Code);
            Assert.Empty(Via.Routes(T));
        }
        finally
        {
            sleeper.Kill();
            sleeper.WaitForExit();
            Via.Run(T, "rule", "del", "--all");
            Via.Run(T, "down", "--all");
            fixture.State.Configure();
        }
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void A_standing_route_is_joined_by_run_route_and_stays_until_down()
    {
        var before = HostSnapshot.Take(T);
        fixture.State.Configure(Work);
        string flag = Path.Combine(Path.GetTempPath(), $"via-named-{Guid.NewGuid():N}");
        try
        {
            var up = Say(Via.Run(T, "up", "work"));
            Assert.Equal(0, up.Code);
            Assert.Contains("route work is up", up.Out);
            var route = Single(T);
            string id = route.GetProperty("id").GetString()!;
            Assert.Equal(("work", true, "up2", "up"), (route.GetProperty("name").GetString(), route.GetProperty("standing").GetBoolean(),
                route.GetProperty("device").GetString(), route.GetProperty("state").GetString()));
            Assert.Equal(0, route.GetProperty("processes").GetArrayLength());

            // Up again: nothing changes.
            var snapshot = HostSnapshot.Take(T);
            var again = Say(Via.Run(T, "up", "work"));
            Assert.Equal(0, again.Code);
            Assert.Contains($"route work is up already ({id}", again.Out);
            HostSnapshot.AssertUnchanged(snapshot, T);

            // A launch into it leaves through up2 (isp2), and is in the standing route: the same id, no second table.
            var run = Say(Via.Run(T, ["run", "--route", "work", "--", .. Clients.DotNet("tcp", Topology.Server4)]));
            Assert.Equal(0, run.Code);
            Assert.Contains("isp2 10.2.0.2", run.Out);
            string wait = $"import os, time\nwhile not os.path.exists('{flag}'): time.sleep(0.05)";
            using (var program = Via.Start(T, ["run", "--route", "work", "--", Clients.Python, "-c", wait]))
            {
                Via.WaitForRoute(T, "up2", processes: 1);
                var joined = Single(T);
                Assert.Equal(id, joined.GetProperty("id").GetString());
                Assert.Equal(1, joined.GetProperty("processes").GetArrayLength());
                File.WriteAllText(flag, "");
                Assert.True(program.WaitForExit(10000));
                Assert.Equal(0, program.ExitCode);
            }
            // Its programs gone, the route stays; and 'via gc' keeps it.
            HostSnapshot.AssertUnchanged(snapshot, T);
            var gc = Say(Via.Run(T, "gc"));
            Assert.Equal(0, gc.Code);
            Assert.Equal(id, Single(T).GetProperty("id").GetString());
            Assert.Contains($"{id}: route work of via.conf, standing", Via.Run(T, "ls").Out);
            HostSnapshot.AssertUnchanged(snapshot, T);

            var down = Say(Via.Run(T, "down", "work"));
            Assert.Equal(0, down.Code);
            Assert.Contains($"{id} (work): removed", down.Out);
            HostSnapshot.AssertUnchanged(before, T);
            // Down again: it is not up, which is no error.
            var downAgain = Say(Via.Run(T, "down", "work"));
            Assert.Equal((0, "work: not up"), (downAgain.Code, downAgain.Out.Trim()));
        }
        finally
        {
            File.WriteAllText(flag, "");
            Via.Run(T, "down", "--all");
            File.Delete(flag);
            fixture.State.Configure();
        }
    }

    [RootFact]
    public void A_launch_into_a_route_that_is_not_up_makes_it_for_the_program_only()
    {
        var before = HostSnapshot.Take(T);
        fixture.State.Configure(Work + "dns = 10.2.0.1\n");
        try
        {
            var run = Say(Via.Run(T, ["run", "--route", "work", "--", .. Clients.DotNet("tcp", Topology.Server4)]));
            Assert.Equal(0, run.Code);
            Assert.Contains("isp2 10.2.0.2", run.Out);
            HostSnapshot.AssertUnchanged(before, T);
        }
        finally
        {
            Via.Run(T, "down", "--all");
            fixture.State.Configure();
        }
    }

    [RootFact]
    public void Unknown_names_and_options_that_conflict_with_the_route_are_refused_and_nothing_changes()
    {
        fixture.State.Configure(Work + "\n[route home]\ndev = up1\n");
        var before = HostSnapshot.Take(T);
        try
        {
            void Refused(string why, params string[] args)
            {
                var r = Say(Via.Run(T, args));
                Assert.Equal(125, r.Code);
                Assert.Contains(why, r.Err);
                Assert.Single(r.Err.Trim().Split('\n'));
                HostSnapshot.AssertUnchanged(before, T);
            }
            string config = fixture.State.Config;
            Refused($"no route 'nope' in via.conf ({config} has: work, home)", "run", "--route", "nope", "--", "true");
            Refused("--route work takes the route from via.conf; --dev cannot be given with it", "run", "--route", "work", "--dev", "up1", "--", "true");
            Refused("--gateway, --method cannot be given with it", "run", "--route", "work", "--gateway", "10.2.0.1", "--method", "cgroup", "--", "true");
            Refused("name the way out: --dev IFACE, or --route NAME", "run", "--", "true");
            Refused($"no route 'nope' in via.conf ({config} has: work, home)", "up", "nope");
            Refused($"nor a route of via.conf ({config} has: work, home)", "down", "nope");
        }
        finally
        {
            Via.Run(T, "down", "--all");
            fixture.State.Configure();
        }
    }
}
