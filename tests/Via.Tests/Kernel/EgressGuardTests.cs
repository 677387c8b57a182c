using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// The egress guard (DESIGN.md point 11): every ordinary socket feature that aims a packet at
/// another interface than the route's puts it on up1 without via, and under via nothing of it
/// reaches up1's peer. What left is seen on the peer's side (a capture in the ISP namespace on its
/// end of up1), not by the program.
/// </summary>
public sealed class EgressGuardTests(TopologyFixture<EgressGuardTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<EgressGuardTests>>
{
    private Topology T => fixture.Topology;

    private static readonly string Scripts = Path.Combine(ViaBinary.RepositoryRoot, "tests", "Via.Tests", "Kernel", "Scripts");
    private static readonly string EscapeScript = File.ReadAllText(Path.Combine(Scripts, "escape.py"));
    private static int _port = 40000;

    /// <summary>Each way out: the method, and what the program sees under via (null: the kernel takes the packet, but not to up1).</summary>
    public static TheoryData<string, string?> Ways => new()
    {
        { "udp-so-dontroute", "refused EPERM" },       // setsockopt guard
        { "tcp-so-dontroute", "refused EPERM" },       // setsockopt guard: TCP fails at once, no SYN retransmissions
        { "udp-msg-dontroute", "refused EPERM" },      // per message: egress guard
        { "udp-pktinfo", "refused EPERM" },            // IP_PKTINFO ipi_ifindex = up1
        { "udp6-pktinfo", "refused EPERM" },           // IPV6_PKTINFO ipi6_ifindex = up1
        { "udp-unicast-if", "refused EPERM" },         // setsockopt guard
        { "udp6-unicast-if", "refused EPERM" },        // setsockopt guard
        { "udp-multicast", "refused EPERM" },          // IP_MULTICAST_IF up1, 239.1.2.3
        { "udp6-multicast", "refused EPERM" },         // IPV6_MULTICAST_IF up1, ff02::1
        { "udp-broadcast", "refused EPERM" },          // 10.1.0.255: the local table's broadcast route on up1
        { "udp-limited-broadcast", null },             // 255.255.255.255 goes by the route (up2): allowed, not on up1
        { "udp6-link-local", "refused EPERM" },        // fe80::…%up1
        { "tcp6-link-local", "refused EINVAL" },       // connect6 hook binds to up2: scope id up1 refused at connect
        { "udp6-link-local-multicast", "refused EPERM" }, // ff02::1%up1
    };

    [RootTheory]
    [MemberData(nameof(Ways))]
    public void A_way_out_by_another_interface_leaves_by_it_without_via_and_not_under_via(string method, string? underVia)
    {
        using var peer = Capture.Start(T, 1);
        string peerLinkLocal = PeerLinkLocal(1);

        // Without via the probe reaches up1's peer: the test can fail.
        int plainPort = NextPort();
        var plain = T.InHost([Clients.Python, "-c", EscapeScript, method, Str(plainPort), "up1", "10.1.0.1", "fd01::1", peerLinkLocal]);
        output.WriteLine($"plain: {plain.Out}{plain.Err}");
        Assert.Equal("sent", plain.Out.Trim());
        Assert.True(peer.WaitFor(plainPort), $"{method} without via: nothing arrived at up1's peer");

        // Under via, for an unprivileged program and for root alike, nothing of it reaches up1's peer.
        foreach (string user in new[] { "nobody", "root" })
        {
            int port = NextPort();
            var routed = Via.Run(T, "run", "--dev", "up2", "--user", user, "--", Clients.Python, "-c", EscapeScript, method, Str(port), "up1", "10.1.0.1", "fd01::1", peerLinkLocal);
            output.WriteLine($"via as {user}: {routed.Out}{routed.Err}");
            Assert.Equal(0, routed.Code);
            Assert.Equal(underVia ?? "sent", routed.Out.Trim());
            peer.Fence(T);
            Assert.False(peer.Saw(port), $"{method} under via as {user}: a packet reached up1's peer");
        }
    }

    [RootFact]
    public void With_vias_rules_deleted_mid_run_nothing_leaves_by_the_default_interface()
    {
        using var peer = Capture.Start(T, 1);
        int udpPort = NextPort(), tcpPort = NextPort();
        // The program waits until the test has deleted via's rules, then sends to the server address
        // that both ISPs answer for: with the rules gone the marked lookup finds the main table (up1).
        string program = $$"""
            import socket, sys
            print('ready', flush=True); sys.stdin.readline()
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.sendto(b'x', ('{{Topology.Server4}}', {{udpPort}})); print('udp sent')
            except OSError as e: print('udp', e.strerror)
            t = socket.socket(); t.settimeout(3)
            try:
                t.connect(('{{Topology.Server4}}', {{tcpPort}})); print('tcp connected')
            except OSError as e: print('tcp', type(e).__name__)
            """;
        using var via = Via.Start(T, ["run", "--dev", "up2", "--user", "nobody", "--", Clients.Python, "-c", program], input: true);
        Assert.Equal("ready", via.StandardOutput.ReadLine());
        string rest;
        // via's watcher would put the rules back within a moment (FollowTests): holding via's lock
        // keeps it from doing so, so the program's packets meet the guard alone.
        using (fixture.State.Lock())
        {
            var deleted = DeleteViaRules();
            output.WriteLine("deleted: " + string.Join("; ", deleted));
            Assert.NotEmpty(deleted);
            via.StandardInput.WriteLine();
            via.StandardInput.Close();
            // Both lines come when the program exits; via then waits for the lock to remove the route.
            rest = via.StandardOutput.ReadLine() + "\n" + via.StandardOutput.ReadLine();
        }
        Assert.True(via.WaitForExit(30000), "via did not exit");
        output.WriteLine(rest + via.StandardError.ReadToEnd());
        Assert.Contains("udp Operation not permitted", rest);
        Assert.DoesNotContain("tcp connected", rest);
        peer.Fence(T);
        Assert.False(peer.Saw(udpPort), "the UDP datagram reached up1's peer");
        Assert.False(peer.Saw(tcpPort), "a TCP SYN reached up1's peer");
    }

    [RootFact]
    public void After_via_is_killed_the_guard_still_holds()
    {
        using var peer = Capture.Start(T, 1);
        int port = NextPort();
        string program = $$"""
            import socket, sys, struct
            print('ready', flush=True); sys.stdin.readline()
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.sendmsg([b'x'], [(socket.IPPROTO_IP, 8, struct.pack('@i4s4s', socket.if_nametoindex('up1'), b'\0' * 4, b'\0' * 4))], 0, ('10.1.0.1', {{port}})); print('sent')
            except OSError as e: print('refused', e.strerror)
            """;
        using var via = Via.Start(T, ["run", "--dev", "up2", "--user", "nobody", "--", Clients.Python, "-c", program], input: true);
        try
        {
            Assert.Equal("ready", via.StandardOutput.ReadLine());
            // ip netns exec execs via in place: this pid is via's, not the program's.
            Assert.Equal(0, Topology.Run("kill", ["-KILL", Str(via.Id)]).Code);
            Assert.True(via.WaitForExit(10000), "via did not die");
            via.StandardInput.WriteLine(); // the program still has the pipe
            via.StandardInput.Close();
            string answer = via.StandardOutput.ReadLine() ?? "";
            output.WriteLine(answer);
            Assert.Equal("refused Operation not permitted", answer);
            peer.Fence(T);
            Assert.False(peer.Saw(port), "a packet reached up1's peer after via was killed");
        }
        finally
        {
            // The program has exited (it read its line); collect what the killed via left.
            Via.WaitUntil(() => !Via.Run(T, "ls").Out.Contains("python3", StringComparison.Ordinal), "the program to exit");
            var gc = Via.Run(T, "gc");
            output.WriteLine(gc.Out + gc.Err);
        }
    }

    [RootFact]
    public void Counters_count_out_in_and_refused_and_outlive_via_while_the_route_lives()
    {
        // A daemon keeps the route after via returns; it sends one refused datagram, then waits.
        string marker = Path.Combine(Path.GetTempPath(), $"via-counters-{Environment.ProcessId}-{NextPort()}");
        string daemon = $$"""
            import os, socket, struct, time
            if os.fork(): os._exit(0)
            null = os.open('/dev/null', os.O_RDWR)
            for fd in (0, 1, 2): os.dup2(null, fd)  # let via's caller see the end of the output
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try: s.sendmsg([b'x' * 100], [(socket.IPPROTO_IP, 8, struct.pack('@i4s4s', socket.if_nametoindex('up1'), b'\0' * 4, b'\0' * 4))], 0, ('10.1.0.1', 40999))
            except OSError: pass
            while not os.path.exists('{{marker}}'): time.sleep(0.05)
            """;
        try
        {
            var r = Via.Run(T, "run", "--dev", "up2", "--", "sh", "-c",
                $"{string.Join(' ', Clients.Curl(Topology.Server4))} >/dev/null && {Clients.Python} -c \"$0\"", daemon);
            output.WriteLine(r.Out + r.Err);
            Assert.Equal(0, r.Code);

            // via has returned; the route lives on for the daemon, and so do its counters.
            var ls = Via.Run(T, "ls", "--json");
            output.WriteLine(ls.Out);
            using var doc = JsonDocument.Parse(ls.Out);
            var route = Assert.Single(doc.RootElement.EnumerateArray());
            var traffic = route.GetProperty("traffic");
            // curl's request and the HTTP answer went through up2; the datagram aimed at up1 was refused.
            Assert.InRange(traffic.GetProperty("outPackets").GetUInt64(), 3UL, 1000UL);
            Assert.InRange(traffic.GetProperty("outBytes").GetUInt64(), 100UL, 100_000UL);
            Assert.InRange(traffic.GetProperty("inPackets").GetUInt64(), 3UL, 1000UL);
            Assert.InRange(traffic.GetProperty("inBytes").GetUInt64(), 100UL, 100_000UL);
            Assert.Equal(1UL, traffic.GetProperty("refusedPackets").GetUInt64());
            Assert.Equal(128UL, traffic.GetProperty("refusedBytes").GetUInt64()); // 20 IP + 8 UDP + 100

            var text = Via.Run(T, "ls");
            output.WriteLine(text.Out);
            Assert.Matches(@"OUT\s+IN\s+REFUSED", text.Out);

            var top = Via.Run(T, "top", "--count", "2", "--interval", "0.2");
            output.WriteLine(top.Out + top.Err);
            Assert.Equal(0, top.Code);
            var lines = top.Out.Trim().Split('\n');
            Assert.Equal(2, lines.Length); // not a terminal: one plain line per route and refresh
            Assert.All(lines, l => Assert.Contains("route=t", l));
            Assert.Contains("refused_packets=1", lines[1]);
            Assert.Contains("out_bytes_per_s=0", lines[1]); // the second refresh has a rate, and nothing moved

            var json = Via.Run(T, "top", "--count", "1", "--json");
            using var sample = JsonDocument.Parse(json.Out.Trim());
            Assert.Equal(1UL, Assert.Single(sample.RootElement.GetProperty("routes").EnumerateArray()).GetProperty("traffic").GetProperty("refusedPackets").GetUInt64());
        }
        finally
        {
            File.WriteAllText(marker, "");
            Via.WaitUntil(() => Via.Run(T, "ls").Out.Trim() == "no routes", "the route to go with its daemon");
            File.Delete(marker);
        }
    }

    [RootFact]
    public void Top_refuses_a_bad_interval_or_count_with_125()
    {
        foreach (var args in new[] { new[] { "--interval", "0" }, ["--interval", "-1"], ["--count", "0"] })
        {
            var r = Via.Run(T, ["top", .. args]);
            Assert.Equal(125, r.Code);
            Assert.StartsWith("via: " + args[0], r.Err.Trim());
            Assert.Single(r.Err.Trim().Split('\n'));
        }
    }

    private static int NextPort() => Interlocked.Increment(ref _port);

    private static string Str(int n) => n.ToString(CultureInfo.InvariantCulture);

    private string PeerLinkLocal(int k)
    {
        var r = Topology.Run("ip", ["-n", T.Isp(k), "-6", "-o", "addr", "show", "dev", "wan", "scope", "link"]);
        var word = r.Out.Split(' ', StringSplitOptions.RemoveEmptyEntries).SkipWhile(w => w != "inet6").Skip(1).First();
        return word.Split('/')[0];
    }

    private List<string> DeleteViaRules()
    {
        var deleted = new List<string>();
        foreach (var family in new[] { "-4", "-6" })
        {
            // Not 'ip rule show proto 86': iproute2 6.1 ignores that filter and lists every rule.
            var rules = Topology.Run("ip", ["-n", T.Host, family, "rule", "show"]).Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(r => r.TrimEnd().EndsWith(" proto 86", StringComparison.Ordinal));
            foreach (var rule in rules)
            {
                // "12000:	from all fwmark 0x10000/0xff0000 lookup 22000 proto 86"
                var spec = rule[(rule.IndexOf(':') + 1)..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                Topology.Ip(["-n", T.Host, family, "rule", "del", "pref", rule[..rule.IndexOf(':')], .. spec]);
                deleted.Add(rule);
            }
        }
        return deleted;
    }

}
