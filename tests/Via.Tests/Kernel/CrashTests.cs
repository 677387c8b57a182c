using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// SIGKILL via at every point of set-up and teardown (VIA_FAULT): the program never leaves by the
/// wrong uplink, and after 'via gc' the host is exactly as it was.
/// </summary>
public sealed class CrashTests(TopologyFixture<CrashTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<CrashTests>>
{
    private Topology T => fixture.Topology;

    /// <summary>
    /// Every point via can be killed at: after the journal is written, after each change applied
    /// (a batch of routes and rules is one system call, so one point, however many changes it
    /// holds), after the program exits, and after each change undone.
    /// </summary>
    private static List<string> Stages(Topology T, string[] method)
    {
        int steps = PlanLength(T, method);
        Assert.True(steps >= 12, $"plan has {steps} steps");
        var stages = new List<string> { "journal" };
        for (int i = 1; i <= steps; i++) stages.Add($"apply:{i}");
        stages.Add("exit");
        for (int i = 1; i <= steps; i++) stages.Add($"undo:{i}");
        return stages;
    }

    [RootFact]
    public void Killed_at_any_point_it_leaks_nothing_and_gc_restores_the_host() => KilledAtAnyPoint(T, output, []);

    /// <summary>The kill-point test for a method (<paramref name="method"/>: <c>--method NAME</c>, or none for the default),
    /// as the class that owns <paramref name="T"/> (its state directory, cgroup subtree and tables).
    /// <paramref name="leftovers"/>, where given, names what else of the method's could be left (it is
    /// the same before and after each stage).</summary>
    public static void KilledAtAnyPoint(Topology T, ITestOutputHelper output, string[] method, Func<string>? leftovers = null)
    {
        foreach (var stage in Stages(T, method))
        {
            var before = HostSnapshot.Take(T);
            string objects = leftovers?.Invoke() ?? "";
            int isp1 = T.ServerLog(1).Count;
            var r = Via.RunWith(T, [$"VIA_FAULT={stage}"], ["run", .. method, "--dev", "up2", "--", .. Clients.DotNet("tcp", Topology.Server4)]);
            output.WriteLine($"{stage}: exit {r.Code}, out {r.Out.Trim()}, err {r.Err.Trim()}");
            Assert.True(r.Code == 128 + 9, $"{stage}: via should have died of SIGKILL there, exited {r.Code}");
            bool launched = stage is "exit" || stage.StartsWith("undo", StringComparison.Ordinal);
            // The program ran only after a complete set-up, and nothing left through up1.
            Assert.True((launched ? "isp2 10.2.0.2" : "") == r.Out.Trim(), $"{stage}: program said '{r.Out.Trim()}'");
            Assert.True(isp1 == T.ServerLog(1).Count, $"{stage}: a connection reached isp1");

            var gc = Via.Run(T, "gc");
            output.WriteLine("  gc: " + (gc.Out + gc.Err).Trim().Replace('\n', ';'));
            Assert.True(gc.Code == 0, $"{stage}: via gc exited {gc.Code}: {gc.Err}");
            HostSnapshot.AssertUnchanged(before, T);
            Assert.Equal(objects, leftovers?.Invoke() ?? "");
        }
    }

    private static int PlanLength(Topology T, string[] method)
    {
        var json = Via.Run(T, ["run", .. method, "--dev", "up2", "--dry-run", "--json", "--", "true"]);
        using var doc = System.Text.Json.JsonDocument.Parse(json.Out);
        return doc.RootElement.GetProperty("steps").GetArrayLength();
    }

    [RootFact]
    public void Gc_run_from_another_namespace_enters_the_routes_own()
    {
        var before = HostSnapshot.Take(T);
        var r = Via.RunWith(T, ["VIA_FAULT=exit"], "run", "--dev", "up2", "--", "true");
        Assert.Equal(128 + 9, r.Code);
        Assert.Contains("fwmark", Topology.Run("ip", ["-n", T.Host, "rule"]).Out);
        // 'via gc' in another namespace (isp1's, where via made nothing; not the root namespace,
        // whose via-tagged objects are not this class's to sweep): it finds the route's namespace
        // by its recorded identity under /run/netns, enters it, and removes the route there.
        var gc = Topology.Run("ip", ["netns", "exec", T.Isp(1), .. fixture.State.Command([], ["gc"])]);
        output.WriteLine(gc.Out + gc.Err);
        Assert.Equal(0, gc.Code);
        Assert.Contains("removed route t", gc.Out);
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void A_program_that_outlives_a_killed_via_stays_routed_and_gc_waits_for_it()
    {
        var before = HostSnapshot.Take(T);
        int isp1 = T.ServerLog(1).Count;
        const string loop = """
            import socket, time
            for i in range(15):
                try:
                    s = socket.create_connection(('198.51.100.1', 8080), timeout=3); s.sendall(b'GET / HTTP/1.0\r\n\r\n')
                    print(s.makefile().read().split('\n')[-2], flush=True)
                except OSError as e:
                    print('error', e, flush=True)
                time.sleep(0.1)
            """;
        using var via = Via.Start(T, ["run", "--dev", "up2", "--", Clients.Python, "-c", loop]);
        Assert.Equal("isp2 10.2.0.2", via.StandardOutput.ReadLine());
        Assert.Equal(0, Topology.Run("kill", ["-KILL", via.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).Code);
        // gc while the orphaned program runs: its route must stay.
        var gc = Via.Run(T, "gc");
        Assert.Equal(0, gc.Code);
        Assert.DoesNotContain("removed route", gc.Out);
        var lines = new List<string>();
        for (string? line; (line = via.StandardOutput.ReadLine()) is not null;) lines.Add(line);
        output.WriteLine(string.Join('\n', lines));
        Assert.Equal(14, lines.Count);
        Assert.All(lines, l => Assert.Equal("isp2 10.2.0.2", l));
        Assert.Equal(isp1, T.ServerLog(1).Count);
        Assert.Contains("stale", Via.Run(T, "ls").Out);
        Assert.Equal(0, Via.Run(T, "gc").Code);
        HostSnapshot.AssertUnchanged(before, T);
    }
}
