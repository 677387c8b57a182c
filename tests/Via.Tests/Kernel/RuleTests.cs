using System.Globalization;
using System.Text.Json;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// 'via rule add|ls|del' in the topology's host namespace: a user, group or comm rule sends the
/// sockets of processes that via did not start (run by 'ip netns exec ... setpriv', as a service
/// manager would) out of up2 with up2's source address, and leaves every other process on the default
/// path (up1). The rule programs sit at the cgroup2 root, shared with every other class: each marks
/// only sockets of the namespace it was made in, and the snapshot counts only this class's own.
/// </summary>
public sealed class RuleTests(TopologyFixture<RuleTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<RuleTests>>, IDisposable
{
    private Topology T => fixture.Topology;

    /// <summary>uid and gid 1 and 2: daemon and bin, in every Debian and Ubuntu /etc/passwd and /etc/group.</summary>
    private const int Daemon = 1, Bin = 2;

    /// <summary>Asks the server over TCP, prints what it saw, then the socket's mark (SO_MARK, 36).</summary>
    private const string AskWithMark = """
        import socket
        s = socket.create_connection(('198.51.100.1', 8080), timeout=5)
        mark = s.getsockopt(socket.SOL_SOCKET, 36)
        s.sendall(b'GET / HTTP/1.0\r\n\r\n'); data = b''
        while True:
            d = s.recv(4096)
            if not d: break
            data += d
        print(data.split(b'\r\n\r\n', 1)[1].decode().strip(), hex(mark))
        """;

    /// <summary>
    /// The python client run in the host namespace as uid <paramref name="uid"/>, gid <paramref name="gid"/>,
    /// by ip netns exec and setpriv, not by via: "isp2 10.2.0.2 0x..." (whom the server saw, and the socket's mark).
    /// </summary>
    private string AskAs(int uid, int gid)
    {
        var r = T.InHost(["setpriv", "--reuid", $"{uid}", "--regid", $"{gid}", "--clear-groups", Clients.Python, "-c", AskWithMark]);
        Assert.True(r.Code == 0, $"client as {uid}:{gid}: {r.Err}");
        return r.Out.Trim();
    }

    private static string Seen(string answer) => string.Join(' ', answer.Split(' ')[..2]);

    private (int Code, string Out, string Err) Via_(params string[] args)
    {
        var r = Via.Run(T, args);
        output.WriteLine($"via {string.Join(' ', args)} -> {r.Code}\n{r.Out}{r.Err}");
        return r;
    }

    private List<JsonElement> Rules()
    {
        var r = Via.Run(T, "rule", "ls", "--json");
        Assert.True(r.Code == 0, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        return [.. doc.RootElement.EnumerateArray().Select(e => e.Clone())];
    }

    [RootFact]
    public void A_user_rule_routes_that_users_processes_whoever_started_them_and_rule_del_restores_the_default_path()
    {
        var before = HostSnapshot.Take(T);
        Assert.Equal("isp1 10.1.0.2", Seen(AskAs(Daemon, Daemon)));

        var add = Via_("rule", "add", "--user", "daemon", "--dev", "up2");
        Assert.Equal(0, add.Code);
        var rule = Assert.Single(Rules());
        Assert.Equal("user:daemon", rule.GetProperty("selector").GetString());
        Assert.Equal(Daemon, rule.GetProperty("uid").GetInt32());
        Assert.Equal("up2", rule.GetProperty("device").GetString());
        Assert.Equal("ebpf", rule.GetProperty("how").GetString());
        Assert.Equal("cli", rule.GetProperty("origin").GetString());
        string id = rule.GetProperty("route").GetString()!;
        Assert.Contains($"{id}: held by standing rules user:daemon", Via.Run(T, "ls").Out);
        // Its program at the cgroup2 root, the class's own (the snapshot's count of it is what rule del must undo).
        Assert.Contains("sock_create via_rule", HostSnapshot.Take(T).Programs);
        Assert.Contains("user:daemon (uid 1)", Via.Run(T, "rule", "ls").Out);

        // daemon's processes, started by root through ip netns exec and setpriv: up2, with up2's address.
        Assert.Equal("isp2 10.2.0.2", Seen(AskAs(Daemon, Daemon)));
        Assert.Equal("isp2 10.2.0.2", Seen(AskAs(Daemon, Bin)));
        // Another user, and root, keep the default path; their sockets are not marked.
        Assert.Equal("isp1 10.1.0.2 0x0", AskAs(Bin, Bin));
        Assert.Equal("isp1 10.1.0.2 0x0", AskAs(0, 0));

        // The same rule again changes nothing; on another interface it is refused.
        var again = Via_("rule", "add", "--user", "1", "--dev", "up2");
        Assert.Equal(0, again.Code);
        Assert.Contains("already; nothing changed", again.Out);
        var elsewhere = Via_("rule", "add", "--user", "daemon", "--dev", "up1");
        Assert.Equal(125, elsewhere.Code);
        Assert.Contains($"rule user:daemon is on route {id} (dev up2) already", elsewhere.Err);
        Assert.Single(Rules());
        // With --replace it moves to up1 (its socket's mark is up1's route's), and back.
        Assert.Equal(0, Via_("rule", "add", "--user", "daemon", "--dev", "up1", "--replace").Code);
        Assert.Equal("up1", Assert.Single(Rules()).GetProperty("device").GetString());
        Assert.Equal("isp1 10.1.0.2", Seen(AskAs(Daemon, Daemon)));
        Assert.NotEqual("0x0", AskAs(Daemon, Daemon).Split(' ')[2]);
        Assert.Equal(0, Via_("rule", "add", "--user", "daemon", "--dev", "up2", "--replace").Code);
        id = Assert.Single(Rules()).GetProperty("route").GetString()!;
        Assert.Equal("isp2 10.2.0.2", Seen(AskAs(Daemon, Daemon)));

        var del = Via_("rule", "del", "--user", "daemon");
        Assert.Equal(0, del.Code);
        Assert.Contains("the route is removed", del.Out);
        Assert.Empty(Rules());
        Assert.Equal("isp1 10.1.0.2 0x0", AskAs(Daemon, Daemon));
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void A_group_rule_routes_the_processes_whose_own_group_it_is()
    {
        var before = HostSnapshot.Take(T);
        Assert.Equal(0, Via_("rule", "add", "--group", "bin", "--dev", "up2").Code);
        Assert.Equal(Bin, Assert.Single(Rules()).GetProperty("gid").GetInt32());
        Assert.Equal("isp2 10.2.0.2", Seen(AskAs(Daemon, Bin)));
        Assert.Equal("isp1 10.1.0.2", Seen(AskAs(Bin, Daemon)));
        // A second rule on the same route is an entry of the same program's maps.
        Assert.Equal(0, Via_("rule", "add", "--user", "daemon", "--dev", "up2").Code);
        var rules = Rules();
        Assert.Equal(2, rules.Count);
        Assert.Single(rules.Select(r => r.GetProperty("route").GetString()).Distinct());
        Assert.Equal("isp2 10.2.0.2", Seen(AskAs(Daemon, Daemon)));
        Assert.Equal(0, Via_("rule", "del", "group:bin").Code);
        Assert.Equal("isp1 10.1.0.2", Seen(AskAs(Bin, Bin)));
        Assert.Equal("isp2 10.2.0.2", Seen(AskAs(Daemon, Daemon)));
        Assert.Equal(0, Via_("rule", "del", "--all").Code);
        Assert.Equal("isp1 10.1.0.2", Seen(AskAs(Daemon, Daemon)));
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void A_comm_rule_routes_the_program_of_that_name_only()
    {
        var before = HostSnapshot.Take(T);
        string dir = Directory.CreateTempSubdirectory("via-rule-comm-").FullName;
        try
        {
            string named = Path.Combine(dir, "viarulecurl");
            File.Copy(Topology.Run("sh", ["-c", "command -v curl"]).Out.Trim(), named);
            File.SetUnixFileMode(named, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
            string Curl(string program)
            {
                var r = T.InHost([program, .. Clients.Curl(Topology.Server4)[1..]]);
                Assert.True(r.Code == 0, r.Err);
                return r.Out.Trim();
            }
            Assert.Equal(0, Via_("rule", "add", "--comm", "viarulecurl", "--dev", "up2").Code);
            Assert.Equal("isp2 10.2.0.2", Curl(named));
            Assert.Equal("isp1 10.1.0.2", Curl("curl"));
            Assert.Equal(0, Via_("rule", "del", "comm:viarulecurl").Code);
            Assert.Equal("isp1 10.1.0.2", Curl(named));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void A_rule_outlives_via_and_gc_keeps_it()
    {
        var before = HostSnapshot.Take(T);
        Assert.Equal(0, Via_("rule", "add", "--user", "daemon", "--dev", "up2").Code);
        // Nothing of via left running: no reaper following the route either.
        KillReapers();
        var gc = Via_("gc");
        Assert.Equal(0, gc.Code);
        Assert.Single(Rules());
        Assert.Equal("isp2 10.2.0.2", Seen(AskAs(Daemon, Daemon)));
        Assert.Equal("isp1 10.1.0.2", Seen(AskAs(Bin, Bin)));
        Assert.Equal(0, Via_("rule", "del", "--user", "daemon").Code);
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void A_process_on_a_route_of_via_run_keeps_its_route()
    {
        var before = HostSnapshot.Take(T);
        Assert.Equal(0, Via_("rule", "add", "--user", "daemon", "--dev", "up2").Code);
        string ruleMark = Assert.Single(Rules()).GetProperty("mark").GetString()!;
        var run = Via_("run", "--dev", "up1", "--user", "daemon", "--", Clients.Python, "-c", AskWithMark);
        Assert.Equal(0, run.Code);
        var answer = run.Out.Trim().Split(' ');
        Assert.Equal("isp1 10.1.0.2", string.Join(' ', answer[..2]));
        Assert.NotEqual("0x0", answer[2]);
        Assert.NotEqual(ruleMark, answer[2]);
        Assert.Equal(0, Via_("rule", "del", "--all").Code);
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void A_dport_rule_sends_that_port_through_the_route_and_fails_closed_when_the_interface_goes()
    {
        // A second server on each side, on another port.
        lock (fixture)
        {
            if (!_secondServers.Contains(T))
            {
                for (int k = 1; k <= 2; k++) T.Serve(T.Isp(k), ViaBinary.Path, $"isp{k}", ["--port", "8081"]);
                _secondServers.Add(T);
            }
        }
        var before = HostSnapshot.Take(T);
        (int Code, string Out) Curl(int port, params string[] prefix)
        {
            var r = T.InHost([.. prefix, "curl", "-sS", "--max-time", "3", $"http://{Topology.Server4}:{port}/"]);
            return (r.Code, r.Out.Trim());
        }
        Assert.Equal("isp1 10.1.0.2", Curl(8081).Out);

        Assert.Equal(0, Via_("rule", "add", "--dport", "tcp:8081", "--dev", "up2").Code);
        var rule = Assert.Single(Rules());
        Assert.Equal("dport:tcp:8081", rule.GetProperty("selector").GetString());
        Assert.Equal("ip-rule", rule.GetProperty("how").GetString());
        uint table = rule.GetProperty("table").GetUInt32();
        Assert.Contains($"ipproto tcp dport 8081 lookup {table}", Topology.Run("ip", ["-n", T.Host, "rule"]).Out);
        // No program at the cgroup2 root for a port rule.
        Assert.DoesNotContain("via_rule", HostSnapshot.Take(T).Programs);

        Assert.Equal("isp2 10.2.0.2", Curl(8081).Out);
        Assert.Equal("isp1 10.1.0.2", Curl(8080).Out);
        // A program on a route of 'via run' keeps its route: its fwmark rule comes first.
        var run = Via_("run", "--dev", "up1", "--", "curl", "-sS", "--max-time", "5", $"http://{Topology.Server4}:8081/");
        Assert.Equal("isp1 10.1.0.2", run.Out.Trim());

        // IFACE down: the port's connections fail (the table's unreachable default), never out of up1.
        Topology.Ip("-n", T.Host, "link", "set", "up2", "down");
        try
        {
            var cut = Curl(8081);
            Assert.NotEqual(0, cut.Code);
            Assert.DoesNotContain("isp1", cut.Out);
        }
        finally
        {
            // Up again, with the topology's default routes through up2 (the kernel dropped them with the link).
            Topology.Ip("-n", T.Host, "link", "set", "up2", "up");
            Topology.Ip("-n", T.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200");
            // (As KillSwitchTests: IPv6 may have lost its address with the link, and refuse; these tests use IPv4.)
            Topology.Run("ip", ["-n", T.Host, "-6", "route", "replace", "default", "via", "fd02::1", "dev", "up2", "table", "200"]);
        }
        // Back up, the route's reaper puts its table back.
        Via.WaitUntil(() => Curl(8081).Out == "isp2 10.2.0.2", "the dport rule's route to be back through up2");

        Assert.Equal(0, Via_("rule", "del", "--dport", "tcp:8081").Code);
        Assert.Equal("isp1 10.1.0.2", Curl(8081).Out);
        HostSnapshot.AssertUnchanged(before, T, viaRoutesOnly: true);
    }

    private static readonly HashSet<Topology> _secondServers = new(ReferenceEqualityComparer.Instance);

    [RootFact]
    public void Bad_input_is_refused_and_nothing_changes()
    {
        var before = HostSnapshot.Take(T);
        void Refused(string why, params string[] args)
        {
            var r = Via_(args);
            Assert.Equal(125, r.Code);
            Assert.Contains(why, r.Err);
            Assert.Single(r.Err.Trim().Split('\n'));
            HostSnapshot.AssertUnchanged(before, T);
        }
        Refused("no user 'no-such-user-of-via'", "rule", "add", "--user", "no-such-user-of-via", "--dev", "up2");
        Refused("no group 'no-such-group-of-via'", "rule", "add", "--group", "no-such-group-of-via", "--dev", "up2");
        Refused("one selector per rule, not 2", "rule", "add", "--user", "daemon", "--comm", "curl", "--dev", "up2");
        Refused("name what the rule picks out", "rule", "add", "--dev", "up2");
        Refused("is longer than 15 bytes", "rule", "add", "--comm", "a-very-long-program-name", "--dev", "up2");
        Refused("--dev IFACE", "rule", "add", "--user", "daemon");
        Refused("there is no rule user:daemon", "rule", "del", "--user", "daemon");
        Refused("is not a selector", "rule", "del", "daemon");
        Refused("interface 'nosuchdev0' does not exist", "rule", "add", "--user", "daemon", "--dev", "nosuchdev0");
        Refused("may not end at 65535", "rule", "add", "--dport", "tcp:65000-65535", "--dev", "up2");
        Assert.Empty(Rules());
    }

    /// <summary>SIGKILLs the reapers of this class's routes (via's, started by this test's vias).</summary>
    private void KillReapers()
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
            try
            {
                var args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (args.Length < 2 || args[1] != "__reap") continue;
                if (!File.ReadAllText(Path.Combine(dir, "environ")).Split('\0').Contains("VIA_STATE_DIR=" + fixture.State.StateDirectory)) continue;
                using var p = System.Diagnostics.Process.GetProcessById(pid);
                p.Kill();
                p.WaitForExit(10000);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException) { }
        }
    }

    /// <summary>Rules a failed test left would stay at the cgroup2 root: 'via gc' keeps what is wanted, so they are deleted.</summary>
    public void Dispose()
    {
        if (Directory.Exists(fixture.State.RoutesDirectory) && fixture.State.Journals().Count > 0)
            Via.Run(T, "rule", "del", "--all");
    }
}
