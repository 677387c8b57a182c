using Via.Cli.Commands.Demo;
using Via.Kernel.Cgroups;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>via down cuts programs off (fail closed); via gc removes exactly what is via's and unused.</summary>
public sealed class DownAndGcTests(TopologyFixture<DownAndGcTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<DownAndGcTests>>
{
    private Topology T => fixture.Topology;

    private ClassState S => fixture.State;

    [RootFact]
    public void Down_cuts_a_running_program_off_and_it_never_falls_back_to_the_default_route()
    {
        var before = HostSnapshot.Take(T);
        string flag = Path.Combine(Path.GetTempPath(), $"via-down-{Guid.NewGuid():N}");
        string program = $$"""
            import os, socket, time
            def ask():
                try:
                    s = socket.create_connection(('198.51.100.1', 8080), timeout=3); s.sendall(b'GET / HTTP/1.0\r\n\r\n')
                    return s.makefile().read().split('\n')[-2]
                except OSError as e:
                    return 'error ' + os.strerror(e.errno or 0)
            print(ask(), flush=True)
            while not os.path.exists('{{flag}}'): time.sleep(0.05)
            print(ask(), flush=True)
            print(ask(), flush=True)
            """;
        int isp1 = T.ServerLog(1).Count;
        using var via = Via.Start(T, ["run", "--dev", "up2", "--", Clients.Python, "-c", program]);
        try
        {
            Assert.Equal("isp2 10.2.0.2", via.StandardOutput.ReadLine());
            var down = Via.Run(T, "down", "up2");
            output.WriteLine(down.Out + down.Err);
            Assert.Equal(0, down.Code);
            Assert.Contains("cut off", down.Out);
            Assert.Contains("down", Via.Run(T, "ls").Out);
            File.WriteAllText(flag, "");
            Assert.StartsWith("error", via.StandardOutput.ReadLine());
            Assert.StartsWith("error", via.StandardOutput.ReadLine());
            Assert.True(via.WaitForExit(20000));
            Assert.Equal(0, via.ExitCode);
            Assert.Equal(isp1, T.ServerLog(1).Count);
            HostSnapshot.AssertUnchanged(before, T);
        }
        finally
        {
            File.Delete(flag);
            if (!via.HasExited) via.Kill(entireProcessTree: true);
        }
    }

    [RootFact]
    public void Down_all_and_bad_route_names()
    {
        var before = HostSnapshot.Take(T);
        var none = Via.Run(T, "down", "t99999");
        Assert.Equal(125, none.Code);
        Assert.Contains("no route 't99999'", none.Err);
        Assert.Single(none.Err.Trim().Split('\n'));
        var neither = Via.Run(T, "down");
        Assert.Equal(125, neither.Code);
        Assert.Contains("--all", neither.Err);

        using var a = Via.Start(T, ["run", "--dev", "up1", "--", "sleep", "5"]);
        using var b = Via.Start(T, ["run", "--dev", "up2", "--", "sleep", "5"]);
        Via.WaitUntil(() => Via.Routes(T).Count(r => r.GetProperty("processes").GetArrayLength() > 0) == 2, "via ls to show both routes with their program");
        var all = Via.Run(T, "down", "--all");
        Assert.Equal(0, all.Code);
        Assert.Equal(2, all.Out.Trim().Split('\n').Length);
        Assert.Equal(0, Topology.Run("kill", [a.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), b.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).Code);
        Assert.True(a.WaitForExit(10000) && b.WaitForExit(10000));
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void Gc_removes_via_tagged_leftovers_and_nothing_else()
    {
        var before = HostSnapshot.Take(T);
        // Leftovers no journal knows: a via-tagged rule and route, and an empty cgroup in via's subtree.
        Topology.Ip("-n", T.Host, "rule", "add", "pref", "12000", "fwmark", "0xfe0000/0xff0000", "lookup", "22999", "proto", "86");
        Topology.Ip("-n", T.Host, "route", "add", "unreachable", "default", "table", "22999", "proto", "86");
        // Not via's: the same kind of objects without its tag.
        Topology.Ip("-n", T.Host, "route", "add", "unreachable", "default", "table", "23999", "proto", "static");
        // (In the class's subtree: gc with the class's state directory owns it.)
        string cgroup = Path.Combine(Cgroup2.FindMounts()[0], S.Subtree, "gc-test-orphan");
        Directory.CreateDirectory(cgroup);
        // A damaged journal and a temporary file a crash left half-written.
        Directory.CreateDirectory(S.RoutesDirectory);
        string damaged = S.JournalPath("t29999"), temporary = S.JournalPath("t29998") + ".tmp";
        File.WriteAllText(damaged, "{\"id\": ");
        File.WriteAllText(temporary, "");
        try
        {
            var dry = Via.Run(T, "gc", "--dry-run");
            output.WriteLine(dry.Out);
            Assert.Equal(0, dry.Code);
            Assert.Contains("would remove", dry.Out);
            Assert.True(Directory.Exists(cgroup));

            var gc = Via.Run(T, "gc", "--json");
            output.WriteLine(gc.Out + gc.Err);
            Assert.Equal(0, gc.Code);
            using var doc = System.Text.Json.JsonDocument.Parse(gc.Out);
            Assert.Equal(5, doc.RootElement.GetArrayLength());
            Assert.False(File.Exists(damaged));
            Assert.False(File.Exists(temporary));
            Assert.False(Directory.Exists(cgroup));
            Assert.DoesNotContain("22999", Topology.Run("ip", ["-n", T.Host, "route", "show", "table", "all"]).Out);
            Assert.DoesNotContain("22999", Topology.Run("ip", ["-n", T.Host, "rule"]).Out);
            Assert.Contains("table 23999", Topology.Run("ip", ["-n", T.Host, "route", "show", "table", "all"]).Out);
            Assert.Equal("nothing to collect", Via.Run(T, "gc").Out.Trim());
        }
        finally
        {
            Topology.Run("ip", ["-n", T.Host, "route", "del", "unreachable", "default", "table", "23999"]);
            if (Directory.Exists(cgroup)) Directory.Delete(cgroup);
            File.Delete(damaged);
            File.Delete(temporary);
        }
        HostSnapshot.AssertUnchanged(before, T);
    }
}
