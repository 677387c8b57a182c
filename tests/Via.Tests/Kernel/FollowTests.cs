using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Via.Cli.Commands.Demo;
using Via.Kernel;
using Via.Kernel.Cgroups;
using Via.Kernel.Netlink;
using Via.Kernel.Processes;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// The host changes under a running route (DESIGN.md point 12, issue 7): another program deletes
/// via's rules and routes (systemd-networkd's foreign-rule cleanup), IFACE goes down and up, is
/// renumbered, is deleted and made again with a new index. The program under via (python, asked
/// line by line on its stdin, so the test decides when it tries) fails closed meanwhile (nothing
/// reaches up1's peer: a capture there, and the isp1 server's log) and works again through up2
/// within a bounded poll, without being restarted.
/// Each test builds its own topology (they change up2 for good), and the class has its own state
/// directory, cgroup subtree and tables (<see cref="ClassState"/>), away from the routes of other
/// tests and of another worktree's tests running at the same time.
/// </summary>
public sealed class FollowTests(ClassState<FollowTests> state, ITestOutputHelper output) : IClassFixture<ClassState<FollowTests>>, IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private static int _port;


    /// <summary>
    /// The routed program: on each line PORT it sends a UDP datagram to the server address both
    /// ISPs answer for, port PORT (the capture on up1's peer looks for it), then asks the HTTP
    /// server and prints its answer ("isp2 10.2.0.2") or the error. "escape PORT" sends a datagram
    /// with an IP_PKTINFO naming up1 (the egress guard must refuse it).
    /// </summary>
    private const string Program = """
        import os, socket, struct, sys
        print('ready', flush=True)
        for line in sys.stdin:
            words = line.split()
            if words[0] == 'escape':
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    s.sendmsg([b'x'], [(socket.IPPROTO_IP, 8, struct.pack('@i4s4s', socket.if_nametoindex('up1'), b'\0' * 4, b'\0' * 4))], 0, ('10.1.0.1', int(words[1]))); print('sent', flush=True)
                except OSError as e: print('refused', e.strerror, flush=True)
                continue
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try: u.sendto(b'x', ('198.51.100.1', int(words[0])))
            except OSError: pass
            try:
                t = socket.create_connection(('198.51.100.1', 8080), timeout=1)
                t.sendall(b'GET / HTTP/1.0\r\n\r\n'); print(t.makefile().read().split('\n')[-2], flush=True)
            except OSError as e:
                print('error', os.strerror(e.errno) if e.errno else type(e).__name__, flush=True)
        """;

    /// <summary>Each test begins with no journal (its topology, where a route a failed test left lived, is gone).</summary>
    public void Dispose()
    {
        if (Directory.Exists(state.RoutesDirectory)) Directory.Delete(state.RoutesDirectory, recursive: true);
    }

    [RootFact]
    public void Rules_and_routes_deleted_by_another_program_are_put_back()
    {
        Session((t, via, peer) =>
        {
            string table = Ls(t).GetProperty("table").GetUInt32().ToString(CultureInfo.InvariantCulture);
            TimeSpan took;
            // Holding via's lock keeps the watcher from repairing at once, so that the program's
            // attempt meets the outage for sure; the time is taken from when it is let go.
            using (Lock())
            {
                var deleted = DeleteForeignRules(t);
                output.WriteLine("deleted: " + string.Join("; ", deleted));
                Assert.Contains(deleted, r => r.Contains("lookup " + table, StringComparison.Ordinal));
                Topology.Ip("-n", t.Host, "route", "flush", "table", table);
                Topology.Ip("-n", t.Host, "-6", "route", "flush", "table", table);
                Assert.StartsWith("error", Ask(via, peer));
            }
            var clock = Stopwatch.StartNew();
            Kernel.Via.WaitUntil(() => Topology.Run("ip", ["-n", t.Host, "rule"]).Out.Contains("lookup " + table, StringComparison.Ordinal), "via's rules to come back", Bound);
            output.WriteLine($"rules back {clock.ElapsedMilliseconds} ms after via could take its lock");
            took = UntilWorks(via, peer, "isp2 10.2.0.2");
            output.WriteLine($"works again {clock.ElapsedMilliseconds} ms after via could take its lock (an attempt begun before the repair waits for its 1 s timeout)");
            var route = Ls(t);
            Assert.Equal("up", route.GetProperty("state").GetString());
            Assert.True(route.GetProperty("repairs").GetInt32() >= 1);
            Assert.Contains("lookup " + table, Topology.Run("ip", ["-n", t.Host, "rule"]).Out);
        });
    }

    [RootFact]
    public void The_route_comes_back_when_the_interface_does()
    {
        Session((t, via, peer) =>
        {
            Topology.Ip("-n", t.Host, "link", "set", "up2", "down");
            Assert.Equal("error No route to host", Ask(via, peer));
            Kernel.Via.WaitUntil(() => Ls(t).GetProperty("state").GetString() == "waiting", "via ls to say the route waits", Bound);
            Assert.Contains("up2", Ls(t).GetProperty("waiting").GetString());
            var text = Kernel.Via.Run(t, "ls").Out;
            output.WriteLine(text);
            Assert.Matches(@"STATE\s+REMADE", text);
            Assert.Matches(@"\bwaiting\s+0\s", text);
            Assert.Contains(": interface 'up2' is down", text);

            Topology.Ip("-n", t.Host, "link", "set", "up2", "up");
            // The kernel dropped table 200's default with the link; a DHCP client would add it again.
            var clock = Stopwatch.StartNew();
            Topology.Ip("-n", t.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200");
            var took = UntilWorks(via, peer, "isp2 10.2.0.2");
            output.WriteLine($"works again {clock.ElapsedMilliseconds} ms after the gateway was back ({took.TotalMilliseconds:0} ms of asking)");
            Kernel.Via.WaitUntil(() => Ls(t).GetProperty("state").GetString() == "up", "via ls to say the route is up", Bound);
            Assert.Equal(1, Ls(t).GetProperty("repairs").GetInt32());
            Assert.Equal(JsonValueKind.Null, Ls(t).GetProperty("waiting").ValueKind);
        });
    }

    [RootFact]
    public void A_renumbered_interface_gets_its_route_back_with_the_new_source()
    {
        Session((t, via, peer) =>
        {
            Topology.Ip("-n", t.Host, "addr", "del", "10.2.0.2/24", "dev", "up2");
            Assert.StartsWith("error", Ask(via, peer));
            var clock = Stopwatch.StartNew();
            Topology.Ip("-n", t.Host, "addr", "add", "10.2.0.3/24", "dev", "up2");
            Topology.Ip("-n", t.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200");
            var took = UntilWorks(via, peer, "isp2 10.2.0.3");
            output.WriteLine($"works again {clock.ElapsedMilliseconds} ms after the new address ({took.TotalMilliseconds:0} ms of asking)");
            Kernel.Via.WaitUntil(() => !Topology.Run("ip", ["-n", t.Host, "rule"]).Out.Contains("from 10.2.0.2", StringComparison.Ordinal), "the rule from the old address to go", Bound);
            Assert.Contains("from 10.2.0.3 lookup", Topology.Run("ip", ["-n", t.Host, "rule"]).Out);
        });
    }

    [RootFact]
    public void An_interface_made_again_with_a_new_index_is_followed_with_its_guard()
    {
        Session((t, via, peer) =>
        {
            string before = Topology.Run("ip", ["-n", t.Host, "-o", "link", "show", "up2"]).Out.Split(':')[0];
            // Enough traffic first that the little after the re-creation could not make up for counters started again.
            for (int i = 0; i < 5; i++) Assert.Equal("isp2 10.2.0.2", Ask(via, peer));
            ulong sent = Ls(t).GetProperty("traffic").GetProperty("outPackets").GetUInt64();
            Assert.True(sent >= 20, $"{sent} packets out");
            Topology.Ip("-n", t.Host, "link", "del", "up2");
            Assert.StartsWith("error", Ask(via, peer));
            Kernel.Via.WaitUntil(() => Ls(t).GetProperty("state").GetString() == "waiting", "via ls to say the route waits", Bound);

            // The tunnel redials: the same name, a new index (and a new peer link in isp2).
            var clock = Stopwatch.StartNew();
            Topology.Ip("link", "add", "up2", "netns", t.Host, "type", "veth", "peer", "name", "wan", "netns", t.Isp(2));
            Topology.Ip("-n", t.Host, "addr", "add", "10.2.0.2/24", "dev", "up2");
            Topology.Ip("-n", t.Host, "link", "set", "up2", "up");
            Topology.Ip("-n", t.Isp(2), "addr", "add", "10.2.0.1/24", "dev", "wan");
            Topology.Ip("-n", t.Isp(2), "link", "set", "wan", "up");
            Topology.Ip("-n", t.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200");
            string after = Topology.Run("ip", ["-n", t.Host, "-o", "link", "show", "up2"]).Out.Split(':')[0];
            Assert.NotEqual(before, after);

            // Traffic through the new up2 passes the guard, so the guard names its new index...
            var took = UntilWorks(via, peer, "isp2 10.2.0.2");
            output.WriteLine($"works again {clock.ElapsedMilliseconds} ms after the interface was made again ({took.TotalMilliseconds:0} ms of asking)");
            // ...and still refuses a packet aimed at up1.
            int port = NextPort();
            via.StandardInput.WriteLine($"escape {port}");
            Assert.Equal("refused Operation not permitted", via.StandardOutput.ReadLine());
            peer.Fence(t);
            Assert.False(peer.Saw(port), "a packet aimed at up1 left after the guard followed up2");
            Assert.True(Ls(t).GetProperty("repairs").GetInt32() >= 1);
            // The new guard counts on in the old one's map: the route's counters did not start again.
            Assert.True(Ls(t).GetProperty("traffic").GetProperty("outPackets").GetUInt64() > sent);
        });
    }

    [RootTheory]
    [InlineData("repair:1")] // after the journal names what the repair will make, before it is made
    [InlineData("repair:2")] // after it is made, before the journal says the repair is done
    public void Killed_while_repairing_it_leaks_nothing_and_gc_restores_the_host(string stage)
    {
        using var fixture = TopologyFixture.For(state);
        var t = fixture.Topology;
        using var peer = Capture.Start(t, 1);
        string rulesBefore = Topology.Run("ip", ["-n", t.Host, "rule"]).Out + Topology.Run("ip", ["-n", t.Host, "-6", "rule"]).Out;
        using var via = StartVia(t, $"VIA_FAULT={stage}");
        try
        {
            Assert.Equal("ready", via.StandardOutput.ReadLine());
            Assert.Equal("isp2 10.2.0.2", Ask(via, peer));
            // Renumbered: the repair removes the rule from the old address and makes the new one's.
            // (Deleting the only address of a subnet takes its secondaries along: the old goes first.)
            Topology.Ip("-n", t.Host, "addr", "del", "10.2.0.2/24", "dev", "up2");
            Topology.Ip("-n", t.Host, "addr", "add", "10.2.0.3/24", "dev", "up2");
            Topology.Ip("-n", t.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200");
            Assert.True(via.WaitForExit(10000), $"via was not killed at {stage}");
            Assert.Equal(128 + 9, via.ExitCode);
            // The program outlives via: whatever the repair got to, it does not leave by up1.
            Ask(via, peer);
            via.StandardInput.Close();
            Kernel.Via.WaitUntil(() => Routes(t).All(r => r.GetProperty("processes").GetArrayLength() == 0), "the program to exit", Bound);
            var gc = Kernel.Via.Run(t, "gc");
            output.WriteLine("gc: " + gc.Out + gc.Err);
            Assert.Equal(0, gc.Code);
            Assert.Equal(rulesBefore, Topology.Run("ip", ["-n", t.Host, "rule"]).Out + Topology.Run("ip", ["-n", t.Host, "-6", "rule"]).Out);
            Assert.DoesNotContain("proto 86", Topology.Run("ip", ["-n", t.Host, "route", "show", "table", "all"]).Out);
            Assert.DoesNotContain("proto 86", Topology.Run("ip", ["-n", t.Host, "-6", "route", "show", "table", "all"]).Out);
            Assert.Empty(Routes(t));
            peer.Fence(t);
            Assert.DoesNotContain(_sent, peer.Saw);
            Assert.Empty(t.ServerLog(1));
        }
        finally
        {
            if (!via.HasExited) via.Kill(entireProcessTree: true);
            output.WriteLine("via's stderr: " + via.StandardError.ReadToEnd());
            Kernel.Via.Run(t, "gc");
        }
    }

    [RootFact]
    public void The_monitor_hears_links_addresses_routes_and_rules_change_in_its_namespace()
    {
        using var fixture = TopologyFixture.For(state);
        var t = fixture.Topology;
        using var monitor = Namespaces.InNetwork($"/run/netns/{t.Host}", RtnlMonitor.Open);
        while (monitor.Wait(TimeSpan.FromMilliseconds(100))) { } // whatever the topology's making left queued
        foreach (var change in new[]
        {
            new[] { "rule", "add", "pref", "30000", "table", "30000" }, ["rule", "del", "pref", "30000", "table", "30000"],
            ["-6", "rule", "add", "pref", "30000", "table", "30000"], ["-6", "rule", "del", "pref", "30000", "table", "30000"],
            ["route", "add", "unreachable", "192.0.2.0/24", "table", "30000"], ["-6", "route", "add", "unreachable", "2001:db8:9::/48", "table", "30000"],
            ["addr", "add", "10.2.0.9/24", "dev", "up2"], ["-6", "addr", "add", "fd02::9/64", "dev", "up2", "nodad"],
            ["link", "set", "up2", "down"], ["link", "set", "up2", "up"],
        })
        {
            Topology.Ip(["-n", t.Host, .. change]);
            Assert.True(monitor.Wait(TimeSpan.FromSeconds(5)), $"no announcement for ip {string.Join(' ', change)}");
            while (monitor.Wait(TimeSpan.FromMilliseconds(50))) { }
        }
        // Another namespace's changes are not heard.
        Topology.Ip("-n", t.Isp(1), "route", "add", "unreachable", "192.0.2.0/24");
        Assert.False(monitor.Wait(TimeSpan.FromMilliseconds(300))); // the subject: no announcement within 300 ms
    }

    [RootFact]
    public void Two_vias_sharing_a_route_repair_it_once()
    {
        Session((t, via, peer) =>
        {
            using var second = StartVia(t);
            try
            {
                Assert.Equal("ready", second.StandardOutput.ReadLine());
                Assert.Equal("isp2 10.2.0.2", Ask(second, peer));
                Assert.Single(Routes(t)); // the second joined the first one's route
                DeleteForeignRules(t);
                UntilWorks(via, peer, "isp2 10.2.0.2");
                UntilWorks(second, peer, "isp2 10.2.0.2");
                // Both watchers saw it; each of via's rules comes back once (the other watcher found
                // nothing to do, or EEXIST). IPv4 may work before the last IPv6 rule is back: wait for all four.
                List<string> Rules() => new[] { "-4", "-6" }.SelectMany(f => Topology.Run("ip", ["-n", t.Host, f, "rule"]).Out.Split('\n')
                    .Where(r => r.Contains("proto 86", StringComparison.Ordinal)).Select(r => f + " " + r)).ToList();
                Kernel.Via.WaitUntil(() => Rules().Count >= 4, "via's four rules to come back", Bound);
                Assert.Equal(4, Rules().Count);
                Assert.Equal(4, Rules().Distinct().Count());
                Assert.InRange(Ls(t).GetProperty("repairs").GetInt32(), 1, 4);
            }
            finally
            {
                second.StandardInput.Close();
                Assert.True(second.WaitForExit(30000), "the second via did not exit");
            }
        });
    }

    [RootFact]
    public void The_reaper_keeps_following_for_daemons()
    {
        using var fixture = TopologyFixture.For(state);
        var t = fixture.Topology;
        string scratch = Path.Combine(Path.GetTempPath(), $"via-follow-{Guid.NewGuid():N}");
        string answers = scratch + "-answers", stop = scratch + "-stop";
        // A daemon that asks every 100 ms and appends the answer to a file, until told to stop.
        string daemon = $$"""
            import os, socket, time
            if os.fork(): os._exit(0)
            null = os.open('/dev/null', os.O_RDWR)
            for fd in (0, 1, 2): os.dup2(null, fd)
            while not os.path.exists('{{stop}}'):
                try:
                    s = socket.create_connection(('198.51.100.1', 8080), timeout=0.5)
                    s.sendall(b'GET / HTTP/1.0\r\n\r\n'); a = s.makefile().read().split('\n')[-2]
                except OSError as e: a = 'error'
                with open('{{answers}}', 'a') as f: f.write(a + '\n')
                time.sleep(0.1)
            """;
        try
        {
            var r = Kernel.Via.Run(t, "run", "--dev", "up2", "--", Clients.Python, "-c", daemon);
            output.WriteLine(r.Out + r.Err);
            Assert.Equal(0, r.Code);
            Kernel.Via.WaitUntil(() => Last(answers) == "isp2 10.2.0.2", "the daemon to get through", Bound);
            // via has returned: only its reaper watches the route now.
            Topology.Ip("-n", t.Host, "link", "set", "up2", "down");
            Kernel.Via.WaitUntil(() => Last(answers) == "error", "the daemon to be cut off", Bound);
            Topology.Ip("-n", t.Host, "link", "set", "up2", "up");
            Topology.Ip("-n", t.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200");
            Kernel.Via.WaitUntil(() => Last(answers) == "isp2 10.2.0.2", "the daemon to get through again", Bound);
            Assert.True(Ls(t).GetProperty("repairs").GetInt32() >= 1);
            Assert.DoesNotContain(File.ReadAllLines(answers), a => a.StartsWith("isp1", StringComparison.Ordinal));
        }
        finally
        {
            File.WriteAllText(stop, "");
            Kernel.Via.WaitUntil(() => Routes(t).Count == 0, "the route to go with its daemon", Bound);
            File.Delete(stop);
            File.Delete(answers);
            var gc = Kernel.Via.Run(t, "gc");
            output.WriteLine("gc: " + gc.Out + gc.Err);
        }
    }

    private static string? Last(string file) => File.Exists(file) ? File.ReadLines(file).LastOrDefault() : null;

    /// <summary>
    /// Runs the program under via on a topology of its own with a capture on up1's peer; checks
    /// that it works at first, hands it to <paramref name="body"/>, then that no probe reached
    /// up1's peer or isp1's server, and that nothing of via's is left once it exits.
    /// </summary>
    private void Session(Action<Topology, Process, Capture> body)
    {
        using var fixture = TopologyFixture.For(state);
        var t = fixture.Topology;
        using var peer = Capture.Start(t, 1);
        var via = StartVia(t);
        var errors = new System.Text.StringBuilder();
        via.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (errors) errors.AppendLine(e.Data); };
        via.BeginErrorReadLine();
        try
        {
            Assert.Equal("ready", via.StandardOutput.ReadLine());
            Assert.Equal("isp2 10.2.0.2", Ask(via, peer));
            int isp1 = t.ServerLog(1).Count;
            body(t, via, peer);
            via.StandardInput.Close();
            Assert.True(via.WaitForExit(30000), "via did not exit");
            Assert.Equal(0, via.ExitCode);
            peer.Fence(t);
            Assert.DoesNotContain(_sent, peer.Saw);
            Assert.Equal(isp1, t.ServerLog(1).Count);
            // Nothing of via's is left: its rules and routes (proto 86), its journal, its cgroup (its
            // eBPF programs go with it; other via_* programs may be another worktree's tests').
            Kernel.Via.WaitUntil(() => !Topology.Run("ip", ["-n", t.Host, "rule"]).Out.Contains("proto 86", StringComparison.Ordinal)
                && !Topology.Run("ip", ["-n", t.Host, "-6", "rule"]).Out.Contains("proto 86", StringComparison.Ordinal), "via's rules to go", Bound);
            Assert.DoesNotContain("proto 86", Topology.Run("ip", ["-n", t.Host, "route", "show", "table", "all"]).Out);
            Assert.DoesNotContain("proto 86", Topology.Run("ip", ["-n", t.Host, "-6", "route", "show", "table", "all"]).Out);
            Assert.Empty(state.Journals());
            Assert.DoesNotContain(state.CgroupSubtrees(), s => Directory.Exists(s) && Directory.EnumerateDirectories(s).Any());
        }
        finally
        {
            if (!via.HasExited) via.Kill(entireProcessTree: true);
            via.WaitForExit(10000);
            lock (errors) output.WriteLine("via's stderr:\n" + errors);
            var gc = Kernel.Via.Run(t, "gc");
            output.WriteLine("gc: " + gc.Out + gc.Err);
            via.Dispose();
        }
    }

    /// <summary>via run --dev up2 --user nobody -- python <see cref="Program"/>, with this class's state and tables (and <paramref name="environment"/>, NAME=VALUE), stdin and stdout piped.</summary>
    private Process StartVia(Topology t, params string[] environment)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        string[] args = ["netns", "exec", t.Host, .. state.Command(environment, ["run", "--dev", "up2", "--user", "nobody", "--", Clients.Python, "-c", Program])];
        foreach (var a in args) start.ArgumentList.Add(a);
        return Process.Start(start)!;
    }

    private readonly List<int> _sent = [];

    /// <summary>One attempt of the program: a probe datagram (remembered, for the capture) and an HTTP request; its answer.</summary>
    private string Ask(Process via, Capture peer)
    {
        int port = NextPort();
        _sent.Add(port);
        via.StandardInput.WriteLine(port.ToString(CultureInfo.InvariantCulture));
        string answer = via.StandardOutput.ReadLine() ?? "(the program ended)";
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {answer}");
        return answer;
    }

    /// <summary>Asks until the answer is <paramref name="expected"/>, within <see cref="Bound"/>; how long it took.</summary>
    private TimeSpan UntilWorks(Process via, Capture peer, string expected)
    {
        var clock = Stopwatch.StartNew();
        while (Ask(via, peer) != expected)
        {
            Assert.True(clock.Elapsed < Bound, $"the route did not work again within {Bound.TotalSeconds} s");
            Thread.Sleep(20); // a poll: an attempt that fails at once (EHOSTUNREACH) is tried again, not spun on
        }
        return clock.Elapsed;
    }

    /// <summary>Like systemd-networkd at start (ManageForeignRoutingPolicyRules=yes): every rule but local, main and default goes.</summary>
    private static List<string> DeleteForeignRules(Topology t)
    {
        var deleted = new List<string>();
        foreach (var family in new[] { "-4", "-6" })
        {
            foreach (var rule in Topology.Run("ip", ["-n", t.Host, family, "rule", "show"]).Out.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                string pref = rule[..rule.IndexOf(':')];
                if (pref is "0" or "32766" or "32767") continue;
                var spec = rule[(rule.IndexOf(':') + 1)..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                Topology.Ip(["-n", t.Host, family, "rule", "del", "pref", pref, .. spec]);
                deleted.Add(rule);
            }
        }
        return deleted;
    }

    /// <summary>The one route of this class's state directory, from 'via ls --json'.</summary>
    private JsonElement Ls(Topology t) => Assert.Single(Routes(t));

    /// <summary>The routes of this class's state directory, from 'via ls --json'.</summary>
    private static List<JsonElement> Routes(Topology t) => Kernel.Via.Routes(t);

    /// <summary>via's lock of this class's state directory, as a via holds it.</summary>
    private FileLock Lock() => state.Lock();

    /// <summary>Probe ports 40600-40799: sniff.py reports 40000-40999, the fences take 40800 and up.</summary>
    private static int NextPort() => 40600 + (int)((uint)Interlocked.Increment(ref _port) % 200);
}
