using System.Collections.Concurrent;
using System.Diagnostics;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>Concurrent invocations of the same route share its kernel objects; different routes get their own.</summary>
public sealed class SharingTests(TopologyFixture<SharingTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<SharingTests>>
{
    private Topology T => fixture.Topology;

    [RootFact]
    public void Two_programs_on_the_same_route_share_one_table_and_ls_shows_both()
    {
        var before = HostSnapshot.Take(T);
        // Each program is one process that waits for a file, so the test decides when they end.
        string flag = Path.Combine(Path.GetTempPath(), $"via-sharing-{Guid.NewGuid():N}");
        string wait = $"import os, time\nwhile not os.path.exists('{flag}'): time.sleep(0.05)";
        using var a = Via.Start(T, ["run", "--dev", "up2", "--", Clients.Python, "-c", wait]);
        using var b = Via.Start(T, ["run", "--dev", "up2", "--", Clients.Python, "-c", wait]);
        try
        {
            Via.WaitForRoute(T, "up2", processes: 2);
            var ls = Via.Run(T, "ls", "--json");
            output.WriteLine(ls.Out);
            using var doc = System.Text.Json.JsonDocument.Parse(ls.Out);
            var routes = doc.RootElement.EnumerateArray().ToList();
            Assert.Single(routes);
            Assert.Equal("up2", routes[0].GetProperty("device").GetString());
            Assert.Equal("up", routes[0].GetProperty("state").GetString());
            Assert.Equal(2, routes[0].GetProperty("processes").GetArrayLength());
            Assert.All(routes[0].GetProperty("processes").EnumerateArray(), p => Assert.StartsWith($"{Clients.Python} -c import os, time", p.GetProperty("command").GetString()));
            var text = Via.Run(T, "ls");
            Assert.Contains($"{Clients.Python} -c", text.Out);
            Assert.Single(Topology.Run("ip", ["-n", T.Host, "rule"]).Out.Split('\n'), l => l.Contains("fwmark"));
            File.WriteAllText(flag, "");
            Assert.True(a.WaitForExit(10000) && b.WaitForExit(10000));
            Assert.Equal(0, a.ExitCode);
            Assert.Equal(0, b.ExitCode);
            HostSnapshot.AssertUnchanged(before, T);
            Assert.Equal("no routes", Via.Run(T, "ls").Out.Trim());
        }
        finally
        {
            File.WriteAllText(flag, "");
            if (!a.WaitForExit(10000)) a.Kill(entireProcessTree: true);
            if (!b.WaitForExit(10000)) b.Kill(entireProcessTree: true);
            File.Delete(flag);
        }
    }

    [RootFact]
    public void A_hundred_invocations_over_four_routes_each_go_their_own_way()
    {
        foreach (var (dev, addr) in new[] { ("up1", "10.1.0.3/24"), ("up2", "10.2.0.3/24") })
            Topology.Ip("-n", T.Host, "addr", "add", addr, "dev", dev);
        try
        {
            var before = HostSnapshot.Take(T);
            var routes = new[] { ("up1", "10.1.0.2", "isp1"), ("up1", "10.1.0.3", "isp1"), ("up2", "10.2.0.2", "isp2"), ("up2", "10.2.0.3", "isp2") };
            var runs = new List<(Process Via, string Expected)>();
            for (int i = 0; i < 100; i++)
            {
                var (dev, src, isp) = routes[i % 4];
                string delay = ((i * 37) % 150 / 100.0).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture);
                runs.Add((Via.Start(T, ["run", "--dev", dev, "--src", src, "--", "sh", "-c", $"sleep {delay}; {Via.ProbeLine("tcp", Topology.Server4)}"]), $"{isp} {src}"));
            }
            // While they run: never a duplicate rule or route, never more than one table per route.
            var duplicates = new ConcurrentBag<string>();
            for (int sample = 0; sample < 10; sample++)
            {
                foreach (var args in new[] { new[] { "-n", T.Host, "rule" }, ["-n", T.Host, "-6", "rule"], ["-n", T.Host, "route", "show", "table", "all"] })
                {
                    var lines = Topology.Run("ip", args).Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                    foreach (var d in lines.GroupBy(l => l).Where(g => g.Count() > 1)) duplicates.Add(d.Key);
                    if (args[2] == "rule") Assert.True(lines.Count(l => l.Contains("fwmark")) <= 4, string.Join('\n', lines));
                }
                Thread.Sleep(100); // the subject: ten samples spread over the runs (about a second and a half), not a condition
            }
            foreach (var (via, expected) in runs)
            {
                string stdout = via.StandardOutput.ReadToEnd();
                string stderr = via.StandardError.ReadToEnd();
                Assert.True(via.WaitForExit(60000), "an invocation did not finish");
                Assert.True(via.ExitCode == 0, $"exit {via.ExitCode}: {stderr}");
                Assert.Equal(expected, stdout.Trim());
                via.Dispose();
            }
            Assert.Empty(duplicates);
            HostSnapshot.AssertUnchanged(before, T);
        }
        finally
        {
            Topology.Run("ip", ["-n", T.Host, "addr", "del", "10.1.0.3/24", "dev", "up1"]);
            Topology.Run("ip", ["-n", T.Host, "addr", "del", "10.2.0.3/24", "dev", "up2"]);
        }
    }
}
