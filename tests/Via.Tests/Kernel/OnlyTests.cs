using System.Text.Json;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// The topology of <see cref="OnlyTests"/>: besides the servers on 198.51.100.1 and
/// 2001:db8:100::1 port 8080, each isp has a second destination network (203.0.113.1,
/// 2001:db8:200::1 on lo, answered by the same TCP server) and a second TCP port (8081), so a
/// test can tell a filtered destination from one that is not by the isp that answers.
/// </summary>
public sealed class OnlyTopology() : TopologyFixture(new ClassState(nameof(OnlyTests)), ownsState: true)
{
    public const string Other4 = "203.0.113.1", Other6 = "2001:db8:200::1";
    public const int SecondPort = 8081;

    private int _ready;

    /// <summary>The topology, with the second network and port added (once).</summary>
    public Topology Prepared
    {
        get
        {
            var t = Topology;
            lock (this)
            {
                if (_ready == 0)
                {
                    for (int k = 1; k <= 2; k++)
                    {
                        Topology.Ip("-n", t.Isp(k), "addr", "add", Other4 + "/32", "dev", "lo");
                        Topology.Ip("-n", t.Isp(k), "addr", "add", Other6 + "/128", "dev", "lo");
                        t.Serve(t.Isp(k), ViaBinary.Path, $"isp{k}", ["--port", SecondPort.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                    }
                    _ready = 1;
                }
            }
            return t;
        }
    }
}

/// <summary>
/// 'via run --only': only the filtered destinations of the program take the route (up2, isp2);
/// the rest of its traffic keeps the default path (up1, isp1) with up1's address. When up2 goes,
/// the filtered destinations fail closed and the rest goes on; the egress guard refuses a filtered
/// packet aimed at up1 and lets the others pass; a bad SPEC changes nothing.
/// </summary>
public sealed class OnlyTests(OnlyTopology fixture, ITestOutputHelper output) : IClassFixture<OnlyTopology>
{
    private Topology T => fixture.Prepared;

    private static string Port(int port) => port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A shell line that asks the server at ADDRESS:PORT who it saw, over PROTO, printing "error ..." on failure.</summary>
    private static string Ask(string proto, string address, int port) =>
        $"{Clients.Python} -c \"$0\" {proto} {address} {Port(port)} 2>/dev/null || echo error";

    private (int Code, string Out, string Err) Run(string[] only, params (string Proto, string Address, int Port)[] asks)
    {
        string script = string.Join("; ", asks.Select(a => Ask(a.Proto, a.Address, a.Port)));
        string[] args = ["run", "--dev", "up2", .. only.SelectMany(o => o.StartsWith("--", StringComparison.Ordinal) ? new[] { o } : ["--only", o]), "--", "sh", "-c", script, PythonAsk];
        var r = Via.Run(T, args);
        output.WriteLine($"via {string.Join(' ', args[..^3])} -> {r.Code}\n{r.Out}{r.Err}");
        return r;
    }

    /// <summary>Clients.PythonClient's program, with an error line instead of a traceback.</summary>
    private const string PythonAsk = """
        import os, socket, sys
        proto, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
        fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
        try:
            if proto == 'tcp':
                s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(5); s.connect((addr, port))
                s.sendall(b'GET / HTTP/1.0\r\n\r\n'); print(s.makefile().read().split('\n')[-2])
            else:
                s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(5); s.sendto(b'?', (addr, port)); print(s.recv(999).decode().strip())
        except OSError as e:
            print('error', os.strerror(e.errno) if e.errno else type(e).__name__)
        """;

    [RootTheory]
    [InlineData("cgroup")]
    [InlineData("seccomp")]
    [InlineData("preload")]
    [InlineData("nft")]
    [InlineData("netcls")]
    public void Only_the_filtered_port_takes_the_route_in_both_families(string method)
    {
        var before = HostSnapshot.Take(T);
        var r = Run(["tcp:8081", "udp:8080", $"--method={method}"],
            ("tcp", Topology.Server4, 8080), ("tcp", Topology.Server4, 8081), ("udp", Topology.Server4, 8080),
            ("tcp", Topology.Server6, 8080), ("tcp", Topology.Server6, 8081), ("udp", Topology.Server6, 8080));
        Assert.Equal(0, r.Code);
        Assert.Equal(["isp1 10.1.0.2", "isp2 10.2.0.2", "isp2 10.2.0.2", "isp1 fd01::2", "isp2 fd02::2", "isp2 fd02::2"], r.Out.Trim().Split('\n'));
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void Only_the_filtered_networks_take_the_route()
    {
        var r = Run(["203.0.113.0/24", "2001:db8:200::/48"],
            ("tcp", Topology.Server4, 8080), ("tcp", OnlyTopology.Other4, 8080), ("tcp", Topology.Server6, 8080), ("tcp", OnlyTopology.Other6, 8080));
        Assert.Equal(0, r.Code);
        Assert.Equal(["isp1 10.1.0.2", "isp2 10.2.0.2", "isp1 fd01::2", "isp2 fd02::2"], r.Out.Trim().Split('\n'));

        // A network and a port together: that port of that network only.
        var both = Run(["203.0.113.1@tcp:8081"],
            ("tcp", OnlyTopology.Other4, 8080), ("tcp", OnlyTopology.Other4, 8081), ("tcp", Topology.Server4, 8081), ("tcp", OnlyTopology.Other6, 8081));
        Assert.Equal(["isp1 10.1.0.2", "isp2 10.2.0.2", "isp1 10.1.0.2", "isp1 fd01::2"], both.Out.Trim().Split('\n'));
    }

    [RootFact]
    public void The_rules_are_in_the_kernel_as_planned_while_the_program_runs()
    {
        using var via = Via.Start(T, ["run", "--dev", "up2", "--only", "tcp:8081", "--only", "203.0.113.0/24@udp:53", "--", "sleep", "600"]);
        try
        {
            Via.WaitForRoute(T, "up2");
            string rules = Topology.Run("ip", ["-n", T.Host, "rule"]).Out + Topology.Run("ip", ["-n", T.Host, "-6", "rule"]).Out;
            output.WriteLine(rules);
            Assert.Equal(2, rules.Split('\n').Count(l => l.Contains(" ipproto tcp dport 8081 ", StringComparison.Ordinal) && l.Contains("lookup 2355", StringComparison.Ordinal)));
            Assert.Single(rules.Split('\n'), l => l.Contains("to 203.0.113.0/24 ", StringComparison.Ordinal) && l.Contains(" ipproto udp dport 53 ", StringComparison.Ordinal));
            Assert.Equal(3, rules.Split('\n').Count(l => l.Contains("fwmark", StringComparison.Ordinal) && l.Contains("proto 86", StringComparison.Ordinal)));

            var route = Assert.Single(Via.Routes(T));
            Assert.Equal(["203.0.113.0/24@udp:53", "tcp:8081"], route.GetProperty("only").EnumerateArray().Select(e => e.GetString()));
            // The route's watcher reads the filtered rules back as it made them: nothing to repair...
            Assert.Equal(0, route.GetProperty("repairs").GetInt32());
            // ...until another program deletes one: it is made again, with its selectors.
            string line = rules.Split('\n').First(l => l.Contains(" ipproto tcp dport 8081 ", StringComparison.Ordinal));
            string[] rule = line.Split(':', 2);
            Topology.Ip(["-n", T.Host, "rule", "del", "pref", rule[0], .. rule[1].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)]);
            Via.WaitUntil(() => Via.Routes(T).Single().GetProperty("repairs").GetInt32() >= 1
                && Topology.Run("ip", ["-n", T.Host, "rule"]).Out.Contains(line, StringComparison.Ordinal), "the deleted rule to be made again");
            var ls = Via.Run(T, "ls");
            Assert.Contains("only to 203.0.113.0/24@udp:53, tcp:8081", ls.Out);

            // Another set of filters is another route; the same set joins this one.
            var other = Run(["tcp:8080"], ("tcp", Topology.Server4, 8080));
            Assert.Equal("isp2 10.2.0.2", other.Out.Trim());
            Assert.DoesNotContain("joining", other.Err);
            using var same = Via.Start(T, ["run", "--verbose", "--dev", "up2", "--only", "203.0.113.0/24@udp:53,tcp:8081", "--", "true"]);
            string err = same.StandardError.ReadToEnd();
            Assert.True(same.WaitForExit(30000));
            Assert.Contains("joining route", err);
        }
        finally
        {
            Exec(via);
        }
    }

    /// <summary>Stops a 'via run' started in the background (SIGTERM: it forwards it and removes its route).</summary>
    private void Exec(System.Diagnostics.Process via)
    {
        if (!via.HasExited) Topology.Run("kill", ["-TERM", Port(via.Id)]);
        Assert.True(via.WaitForExit(30000), "via did not exit");
        output.WriteLine(via.StandardError.ReadToEnd());
    }

    [RootFact]
    public void When_the_uplink_goes_the_filtered_destinations_fail_and_the_rest_goes_on()
    {
        string flag = Path.Combine(Path.GetTempPath(), $"via-only-{Guid.NewGuid():N}");
        string program = $$"""
            import os, socket, time
            def ask(fam, addr, port, kind):
                try:
                    s = socket.socket(fam, kind); s.settimeout(3)
                    if kind == socket.SOCK_STREAM:
                        s.connect((addr, port)); s.sendall(b'GET / HTTP/1.0\r\n\r\n'); return s.makefile().read().split('\n')[-2]
                    s.sendto(b'?', (addr, port)); return s.recv(999).decode().strip()
                except OSError as e:
                    return 'error ' + (os.strerror(e.errno) if e.errno else type(e).__name__)
            print('before', ask(socket.AF_INET, '198.51.100.1', 8081, socket.SOCK_STREAM), flush=True)
            while not os.path.exists('{{flag}}'): time.sleep(0.05)
            print('tcp4', ask(socket.AF_INET, '198.51.100.1', 8081, socket.SOCK_STREAM), flush=True)
            print('udp4', ask(socket.AF_INET, '198.51.100.1', 8080, socket.SOCK_DGRAM), flush=True)
            print('tcp6', ask(socket.AF_INET6, '2001:db8:100::1', 8081, socket.SOCK_STREAM), flush=True)
            print('udp6', ask(socket.AF_INET6, '2001:db8:100::1', 8080, socket.SOCK_DGRAM), flush=True)
            print('other4', ask(socket.AF_INET, '198.51.100.1', 8080, socket.SOCK_STREAM), flush=True)
            print('other6', ask(socket.AF_INET6, '2001:db8:100::1', 8080, socket.SOCK_STREAM), flush=True)
            """;
        using var via = Via.Start(T, ["run", "--dev", "up2", "--only", "tcp:8081", "--only", "udp:8080", "--", Clients.Python, "-c", program]);
        try
        {
            Assert.Equal("before isp2 10.2.0.2", via.StandardOutput.ReadLine());
            int isp2Before = T.ServerLog(2).Count;
            Topology.Ip("-n", T.Host, "link", "set", "up2", "down");
            File.WriteAllText(flag, "");
            var lines = new List<string>();
            for (string? line; (line = via.StandardOutput.ReadLine()) is not null;) lines.Add(line);
            Assert.True(via.WaitForExit(30000));
            output.WriteLine(string.Join('\n', lines) + via.StandardError.ReadToEnd());
            // The filtered destinations: EHOSTUNREACH, the table's kill switch; nothing went out up1 for them.
            Assert.Equal(["tcp4 error No route to host", "udp4 error No route to host", "tcp6 error No route to host", "udp6 error No route to host",
                "other4 isp1 10.1.0.2", "other6 isp1 fd01::2"], lines);
            Assert.Equal(isp2Before, T.ServerLog(2).Count);
        }
        finally
        {
            File.Delete(flag);
            if (!via.HasExited) via.Kill(entireProcessTree: true);
            Topology.Ip("-n", T.Host, "link", "set", "up2", "up");
            // The kernel drops a link's IPv6 addresses when it goes down (keep_addr_on_down is 0): put
            // fd02::2 back, then the routes through up2 that went with the link, for the other tests.
            Topology.Run("ip", ["-n", T.Host, "addr", "replace", "fd02::2/64", "dev", "up2", "nodad"]);
            Topology.Run("ip", ["-n", T.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200"]);
            Topology.Run("ip", ["-n", T.Host, "-6", "route", "replace", "default", "via", "fd02::1", "dev", "up2", "table", "200"]);
        }
    }

    [RootFact]
    public void The_egress_guard_refuses_a_filtered_packet_aimed_at_another_interface_and_passes_the_rest()
    {
        // IP_PKTINFO / IPV6_PKTINFO naming up1: the kernel sends the datagram out up1 whatever the rules
        // say (DESIGN.md point 11). To a filtered destination (udp:8080) the guard drops it (EPERM); to
        // another (udp:8081), it is the default path's and passes.
        const string program = """
            import os, socket, struct
            up1 = socket.if_nametoindex('up1')
            def send(fam, addr, port):
                s = socket.socket(fam, socket.SOCK_DGRAM)
                if fam == socket.AF_INET:
                    cmsg = (socket.IPPROTO_IP, 8, struct.pack('@i4s4s', up1, b'\0' * 4, b'\0' * 4))
                else:
                    cmsg = (socket.IPPROTO_IPV6, 50, struct.pack('@16sI', b'\0' * 16, up1))
                try:
                    s.sendmsg([b'x'], [cmsg], 0, (addr, port)); return 'sent'
                except OSError as e:
                    return 'refused ' + os.strerror(e.errno)
            print(send(socket.AF_INET, '10.1.0.1', 8080))
            print(send(socket.AF_INET, '10.1.0.1', 8081))
            print(send(socket.AF_INET6, 'fd01::1', 8080))
            print(send(socket.AF_INET6, 'fd01::1', 8081))
            """;
        var r = Via.Run(T, "run", "--dev", "up2", "--only", "udp:8080", "--user", "nobody", "--", Clients.Python, "-c", program);
        output.WriteLine(r.Out + r.Err);
        Assert.Equal(0, r.Code);
        Assert.Equal(["refused Operation not permitted", "sent", "refused Operation not permitted", "sent"], r.Out.Trim().Split('\n'));
    }

    [RootFact]
    public void With_dns_servers_the_lookups_take_the_route_too()
    {
        // --dns names the isp's server: the program's own resolv.conf, and its queries (udp 53) through up2.
        string program = $"import socket; print(socket.getaddrinfo('svc.via.test', {Port(OnlyTopology.SecondPort)}, socket.AF_INET)[0][4][0])";
        int before = T.ServerLog(2).Count(l => l.StartsWith("dns isp2 10.2.0.2 svc.via.test", StringComparison.Ordinal));
        var r = Via.Run(T, "run", "--dev", "up2", "--only", "tcp:8081", "--dns", Topology.Server4, "--", Clients.Python, "-c", program);
        output.WriteLine(r.Out + r.Err);
        Assert.Equal(0, r.Code);
        Assert.Equal(Topology.Server4, r.Out.Trim());
        Assert.True(T.ServerLog(2).Count(l => l.StartsWith("dns isp2 10.2.0.2 svc.via.test", StringComparison.Ordinal)) > before, "the lookup did not reach isp2 through up2");
    }

    public static TheoryData<string[]> BadSpecs => new()
    {
        new[] { "--only", "tcp:65535" },
        new[] { "--only", "10.20.0.1/16" },
        new[] { "--only", "sctp:80" },
        new[] { "--only", "tcp:3306", "--only", "mysql" },
        new[] { "--only", "" },
        new[] { "--only", "tcp:8081", "--method", "netns" },
        new[] { "--only", "tcp:8081", "--ip", "10.2.0.77/24" },
    };

    [RootTheory]
    [MemberData(nameof(BadSpecs))]
    public void A_bad_spec_or_a_method_that_cannot_filter_changes_nothing(string[] options)
    {
        var before = HostSnapshot.Take(T);
        var r = Via.Run(T, ["run", "--dev", "up2", .. options, "--", "true"]);
        output.WriteLine($"-> {r.Code}\n{r.Out}{r.Err}");
        Assert.Equal(125, r.Code);
        Assert.StartsWith("via: ", r.Err);
        string named = options[Array.LastIndexOf(options, "--only") + 1];
        if (options.Contains("--method") || options.Contains("--ip")) Assert.Contains("--only", r.Err);
        else if (named.Length > 0) Assert.Contains(named, r.Err);
        HostSnapshot.AssertUnchanged(before, T);
    }
}
