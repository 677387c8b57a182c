using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Via.Cli.Commands.Demo;
using Via.Mechanisms.Preload;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// The contract (issue 8, section 3) for <c>via run --method preload</c>: the LD_PRELOAD library
/// and its root tagger, in this class's topology, with real programs; the uplink is the one the
/// server saw. Its own state directory (/run/via-test-preload) and tables (23400-23449; its contract row, 23450-23499). Every
/// check of "nothing left" looks at this class's own objects only (its namespace, its journals,
/// its routes' cgroups and taggers), so other classes and worktrees may run at the same time.
/// </summary>
public sealed class PreloadTests(TopologyFixture<PreloadTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<PreloadTests>>, IDisposable
{
    private const string State = "/run/via-test-preload";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    private Topology T => fixture.Topology;

    private static string Config
    {
        get
        {
            string file = Path.Combine(State, "via.conf");
            if (!File.Exists(file))
            {
                Directory.CreateDirectory(State);
                File.WriteAllText(file, "tables = 23400-23449\n");
            }
            return file;
        }
    }

    private static string[] Env => ["env", $"VIA_STATE_DIR={State}", $"VIA_CONFIG={Config}"];

    public void Dispose()
    {
        // What a failed test left: its programs (cgroup.kill on each route's cgroup), the route
        // (via's own collector), then any tagger of this class's routes.
        string routes = Path.Combine(State, "routes");
        if (Directory.Exists(routes) && Directory.EnumerateFiles(routes, "*.json").Any())
        {
            foreach (var journal in Directory.EnumerateFiles(routes, "*.json"))
                foreach (var mount in global::Via.Kernel.Cgroups.Cgroup2.FindMounts())
                {
                    string kill = Path.Combine(mount, "via", Path.GetFileNameWithoutExtension(journal), "cgroup.kill");
                    try { if (File.Exists(kill)) File.WriteAllText(kill, "1"); } catch (IOException) { }
                }
            Kernel.Via.WaitUntil(() => { Via("gc"); return !Directory.EnumerateFiles(routes, "*.json").Any(); }, "via gc to remove what a failed test left", Bound);
        }
        foreach (var (pid, _) in OurTaggers()) StartTagger.Stop(pid);
        // Nothing of the class's is left on the machine: its state directory goes too (the next test writes it again).
        if (!Directory.Exists(routes) || !Directory.EnumerateFiles(routes, "*.json").Any())
        {
            try { Directory.Delete(State, recursive: true); }
            catch (DirectoryNotFoundException) { }
        }
    }

    private (int Code, string Out, string Err) Via(params string[] args)
    {
        var r = T.InHost([.. Env, ViaBinary.Path, .. args], Kernel.Via.Timeout);
        output.WriteLine($"via {string.Join(' ', args)} -> {r.Code}\nstdout: {r.Out}\nstderr: {r.Err}");
        return r;
    }

    /// <summary>via run --method preload --dev up2 [OPTIONS] -- COMMAND.</summary>
    private (int Code, string Out, string Err) Preload(string[] command, params string[] options) =>
        Via(["run", "--method", "preload", "--dev", "up2", .. options, "--", .. command]);

    /// <summary>Starts a routed program in the background, its stdin and stdout at hand.</summary>
    private Process Start(string[] command, params string[] options)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        string[] args = ["netns", "exec", T.Host, .. Env, ViaBinary.Path, "run", "--method", "preload", "--dev", "up2", .. options, "--", .. command];
        foreach (var a in args) start.ArgumentList.Add(a);
        return Process.Start(start)!;
    }

    /// <summary>A python program that asks the server on each line of its stdin ("tcp4", "udp6", "mark"...) and prints the answer or the error.</summary>
    private const string Asker = """
        import os, socket, sys
        print('ready', flush=True)
        for line in sys.stdin:
            what = line.strip()
            try:
                if what == 'mark':
                    print(socket.socket().getsockopt(socket.SOL_SOCKET, 36), flush=True); continue
                fam = socket.AF_INET6 if what.endswith('6') else socket.AF_INET
                addr = '2001:db8:100::1' if fam == socket.AF_INET6 else '198.51.100.1'
                if what.startswith('tcp'):
                    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(2); s.connect((addr, 8080))
                    s.sendall(b'GET / HTTP/1.0\r\n\r\n'); print(s.makefile().read().split('\n')[-2], flush=True)
                else:
                    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(2); s.sendto(b'?', (addr, 8080)); print(s.recv(999).decode().strip(), flush=True)
            except OSError as e:
                print('error', os.strerror(e.errno) if e.errno else type(e).__name__, flush=True)
        """;

    private static string Ask(Process via, string what)
    {
        via.StandardInput.WriteLine(what);
        via.StandardInput.Flush();
        return via.StandardOutput.ReadLine() ?? "(eof) " + via.StandardError.ReadToEnd();
    }

    /// <summary>This class's route (via ls --json), once there is exactly one.</summary>
    private JsonElement Route()
    {
        JsonElement route = default;
        Kernel.Via.WaitUntil(() =>
        {
            var r = T.InHost([.. Env, ViaBinary.Path, "ls", "--json"]);
            if (r.Code != 0) return false;
            var routes = JsonDocument.Parse(r.Out).RootElement;
            if (routes.ValueKind == JsonValueKind.Object && routes.TryGetProperty("routes", out var inner)) routes = inner;
            if (routes.GetArrayLength() != 1) return false;
            route = routes[0].Clone();
            return true;
        }, "the route in via ls", Bound);
        return route;
    }

    /// <summary>Taggers of this class's routes (their journals are in this class's state directory, or gone).</summary>
    private static List<(int Pid, string Address)> OurTaggers()
    {
        var mine = new List<(int, string)>();
        foreach (var (pid, address) in StartTagger.Running())
        {
            // This class's routes' ids are in its journals, or were seen by its tests.
            if (StartTagger.RouteOf(address) is { } id && (File.Exists(Path.Combine(State, "routes", id + ".json")) || TaggerIds.Contains(id))) mine.Add((pid, address));
        }
        return mine;
    }

    private static readonly HashSet<string> TaggerIds = [];

    /// <summary>Remembers the route's id, to look for its tagger and cgroup afterwards.</summary>
    private static string Remember(JsonElement route)
    {
        string id = route.GetProperty("id").GetString()!;
        lock (TaggerIds) TaggerIds.Add(id);
        return id;
    }

    /// <summary>Nothing of route <paramref name="id"/> is left: its journal, rules and routes (table), cgroup and tagger.</summary>
    private void AssertGone(string id, uint table)
    {
        Kernel.Via.WaitUntil(() => !File.Exists(Path.Combine(State, "routes", id + ".json")), "the journal to go", Bound);
        Kernel.Via.WaitUntil(() => !StartTagger.Running().Any(t => t.Address == StartTagger.AddressOf(id)), "the tagger to go", Bound);
        string tableText = table.ToString(CultureInfo.InvariantCulture);
        foreach (var family in new[] { "-4", "-6" })
        {
            Assert.DoesNotContain("lookup " + tableText, Topology.Run("ip", ["-n", T.Host, family, "rule"]).Out);
            Assert.Equal("", Topology.Run("ip", ["-n", T.Host, family, "route", "show", "table", tableText]).Out.Trim());
        }
        foreach (var mount in global::Via.Kernel.Cgroups.Cgroup2.FindMounts())
            Assert.False(Directory.Exists(Path.Combine(mount, "via", id)), $"cgroup {id} is left under {mount}");
    }

    private static string Up2(string address) => address.Contains(':') ? "isp2 fd02::2" : "isp2 10.2.0.2";

    public static TheoryData<string, string, string> Programs => new()
    {
        { "curl", "tcp", Topology.Server4 },
        { "curl", "tcp", Topology.Server6 },
        { "python", "tcp", Topology.Server4 },
        { "python", "udp", Topology.Server4 },
        { "python", "tcp", Topology.Server6 },
        { "python", "udp", Topology.Server6 },
    };

    [RootTheory]
    [MemberData(nameof(Programs))]
    public void A_dynamic_program_leaves_through_the_chosen_uplink_with_its_address(string program, string proto, string address)
    {
        string[] client = program == "curl" ? Clients.Curl(address) : Clients.PythonClient(proto, address);
        var plain = T.InHost(client, Kernel.Via.Timeout);
        Assert.Equal(address.Contains(':') ? "isp1 fd01::2" : "isp1 10.1.0.2", plain.Out.Trim());
        var r = Preload(client);
        Assert.Equal(0, r.Code);
        Assert.Equal(Up2(address), r.Out.Trim());
        Assert.Equal("", r.Err); // nothing of the library's or the tagger's on the program's stderr
    }

    [RootFact]
    public void The_socket_carries_the_routes_mark_and_the_route_says_preload()
    {
        using var via = Start([Clients.Python, "-c", Asker]);
        try
        {
            Assert.Equal("ready", via.StandardOutput.ReadLine());
            var route = Route();
            Remember(route);
            Assert.Equal("preload", route.GetProperty("mechanism").GetString());
            uint mark = Convert.ToUInt32(route.GetProperty("mark").GetString(), 16); // "0x..."
            Assert.Equal(mark.ToString(CultureInfo.InvariantCulture), Ask(via, "mark"));
            Assert.Equal("isp2 10.2.0.2", Ask(via, "tcp4"));
        }
        finally
        {
            via.StandardInput.Close();
            Assert.True(via.WaitForExit(20000));
        }
    }

    [RootFact]
    public void A_static_binary_is_refused_in_one_line_and_not_run()
    {
        string marker = Path.Combine(Path.GetTempPath(), $"via-preload-static-{Guid.NewGuid():N}");
        int isp1 = T.ServerLog(1).Count, isp2 = T.ServerLog(2).Count;
        var r = Preload(["/bin/busybox", "sh", "-c", $"touch {marker}; wget -q -O - http://198.51.100.1:8080/"]);
        Assert.Equal(125, r.Code);
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.Contains("statically linked", r.Err);
        Assert.Equal("", r.Out);
        Assert.False(File.Exists(marker));
        Assert.Equal(isp1, T.ServerLog(1).Count);
        Assert.Equal(isp2, T.ServerLog(2).Count);
        Assert.False(Directory.Exists(Path.Combine(State, "routes")) && Directory.EnumerateFiles(Path.Combine(State, "routes")).Any());
    }

    [RootFact]
    public void An_unprivileged_program_is_routed()
    {
        const string who = "import os, socket; s = socket.create_connection(('198.51.100.1', 8080), timeout=5); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(os.getuid(), os.getgid(), s.makefile().read().split('\\n')[-2])";
        var r = Preload([Clients.Python, "-c", who], "--user", "nobody");
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal("65534 65534 isp2 10.2.0.2", r.Out.Trim());
    }

    [RootFact]
    public void A_child_and_a_daemonized_grandchild_are_routed_and_the_route_goes_after_them()
    {
        string file = Path.Combine(Path.GetTempPath(), $"via-preload-daemon-{Guid.NewGuid():N}");
        string daemon = $$"""
            import os, socket, sys, time
            if os.fork() > 0: sys.exit(0)
            os.setsid()
            if os.fork() > 0: os._exit(0)
            time.sleep(0.5)
            s = socket.create_connection(('198.51.100.1', 8080), timeout=5); s.sendall(b'GET / HTTP/1.0\r\n\r\n')
            open('{{file}}.tmp', 'w').write(s.makefile().read().split('\n')[-2]); os.rename('{{file}}.tmp', '{{file}}')
            """;
        try
        {
            using var via = Start(["sh", "-c", $"{string.Join(' ', Clients.Curl(Topology.Server6))}; echo; {Clients.Python} -c \"$0\"", daemon]);
            Assert.Equal("isp2 fd02::2", via.StandardOutput.ReadLine());
            var route = Route();
            string id = Remember(route);
            Assert.True(via.WaitForExit(20000));
            Assert.Equal(0, via.ExitCode);
            Kernel.Via.WaitUntil(() => File.Exists(file), "the daemon's answer", Bound);
            Assert.Equal("isp2 10.2.0.2", File.ReadAllText(file));
            AssertGone(id, route.GetProperty("table").GetUInt32());
        }
        finally
        {
            File.Delete(file);
        }
    }

    [RootFact]
    public void A_child_started_after_unsetenv_and_with_an_empty_environment_is_still_tagged()
    {
        string program = $$"""
            import os, subprocess, sys
            py = '{{Clients.Python}}'
            args = {{PythonList(Clients.PythonClient("tcp", Topology.Server4).Skip(1))}}
            del os.environ['LD_PRELOAD']; del os.environ['{{PreloadMechanism.TaggerVariable}}']
            subprocess.run([py] + args, env={})
            os.system(py + ' ' + ' '.join("'" + a.replace("'", "'\\''") + "'" for a in args))
            sys.stdout.flush()
            os.execve(py, [py] + args, {'PATH': '/usr/bin'})
            """;
        var r = Preload([Clients.Python, "-c", program]);
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(["isp2 10.2.0.2", "isp2 10.2.0.2", "isp2 10.2.0.2"], r.Out.Trim().Split('\n'));
    }

    [RootFact]
    public void A_static_child_cannot_leak_the_egress_guard_refuses_its_packets()
    {
        int isp1 = T.ServerLog(1).Count, isp2 = T.ServerLog(2).Count;
        string program = $$"""
            import subprocess
            # busybox's timeout: the guard drops the SYN, and a TCP connect then waits (it is never sent).
            r = subprocess.run(['/bin/busybox', 'timeout', '3'] + {{PythonList(Clients.StaticWget(Topology.Server4))}}, capture_output=True, text=True)
            print('static', r.returncode != 0, r.stderr.strip())
            r = subprocess.run(['/bin/busybox', 'timeout', '3'] + {{PythonList(Clients.StaticWget(Topology.Server6))}}, capture_output=True, text=True)
            print('static6', r.returncode != 0, r.stderr.strip())
            """;
        var r = Preload([Clients.Python, "-c", program]);
        Assert.Equal(0, r.Code);
        var lines = r.Out.Trim().Split('\n');
        Assert.StartsWith("static True", lines[0]);
        Assert.StartsWith("static6 True", lines[1]);
        Assert.Equal(isp1, T.ServerLog(1).Count); // nothing reached the other uplink
        Assert.Equal(isp2, T.ServerLog(2).Count);
    }

    [RootFact]
    public void Strict_rp_filter_is_honoured_without_changing_it()
    {
        foreach (var key in new[] { "all", "up2" })
            Assert.Equal(0, T.InHost(["sysctl", "-qw", $"net.ipv4.conf.{key}.rp_filter=1"]).Code);
        try
        {
            var tcp = Preload(Clients.Curl(Topology.Server4));
            Assert.Equal("isp2 10.2.0.2", tcp.Out.Trim());
            var udp = Preload(Clients.PythonClient("udp", Topology.Server4));
            Assert.Equal("isp2 10.2.0.2", udp.Out.Trim());
            Assert.Equal("1", T.InHost(["sysctl", "-n", "net.ipv4.conf.up2.rp_filter"]).Out.Trim());
        }
        finally
        {
            foreach (var key in new[] { "all", "up2" }) T.InHost(["sysctl", "-qw", $"net.ipv4.conf.{key}.rp_filter=0"]);
        }
    }

    [RootFact]
    public void Kill_switch_the_program_gets_no_route_to_host_while_its_interface_is_down_and_never_leaks()
    {
        using var via = Start([Clients.Python, "-c", Asker]);
        try
        {
            Assert.Equal("ready", via.StandardOutput.ReadLine());
            Assert.Equal("isp2 10.2.0.2", Ask(via, "tcp4"));
            int isp1 = T.ServerLog(1).Count;
            Topology.Ip("-n", T.Host, "link", "set", "up2", "down");
            try
            {
                Assert.Equal("error No route to host", Ask(via, "tcp4"));
                Assert.StartsWith("error", Ask(via, "udp6"));
                Assert.Equal(isp1, T.ServerLog(1).Count);
            }
            finally
            {
                // As the topology had it: the kernel drops up2's IPv6 address (keep_addr_on_down=0) and
                // table 200's defaults with the link; a network manager would put them back.
                Topology.Ip("-n", T.Host, "link", "set", "up2", "up");
                Topology.Ip("-n", T.Host, "addr", "replace", "fd02::2/64", "dev", "up2", "nodad");
                Topology.Ip("-n", T.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200");
                Topology.Ip("-n", T.Host, "-6", "route", "replace", "default", "via", "fd02::1", "dev", "up2", "table", "200");
            }
            Kernel.Via.WaitUntil(() => Ask(via, "tcp4") == "isp2 10.2.0.2", "the route to come back", Bound);
            Kernel.Via.WaitUntil(() => Ask(via, "tcp6") == "isp2 fd02::2", "the IPv6 route to come back", Bound);
        }
        finally
        {
            via.StandardInput.Close();
            Assert.True(via.WaitForExit(20000));
        }
    }

    [RootFact]
    public void Other_programs_keep_their_route_and_the_tagger_refuses_a_process_outside_the_route()
    {
        using var via = Start([Clients.Python, "-c", Asker]);
        try
        {
            Assert.Equal("ready", via.StandardOutput.ReadLine());
            string id = Remember(Route());
            Assert.Equal("isp2 10.2.0.2", Ask(via, "tcp4"));
            Assert.Equal("isp1 10.1.0.2", T.InHost(Clients.Curl(Topology.Server4)).Out.Trim());
            // The same library, told the route's tagger, in a process outside the route's cgroup.
            const string outside = "import socket\ntry: socket.socket(); print('tagged')\nexcept OSError as e: print(e.strerror)";
            var r = T.InHost(["env", $"LD_PRELOAD={Path.Combine(Path.GetDirectoryName(ViaBinary.Path)!, PreloadMechanism.LibraryName)}", $"{PreloadMechanism.TaggerVariable}={StartTagger.AddressOf(id)}", Clients.Python, "-c", outside]);
            Assert.Equal("Permission denied", r.Out.Trim());
            Assert.Equal("", r.Err); // the library writes nothing
            Assert.Equal("isp2 fd02::2", Ask(via, "tcp6"));
        }
        finally
        {
            via.StandardInput.Close();
            Assert.True(via.WaitForExit(20000));
        }
    }

    [RootFact]
    public void Nothing_is_left_after_the_program_exits()
    {
        using var via = Start([Clients.Python, "-c", Asker]);
        Assert.Equal("ready", via.StandardOutput.ReadLine());
        var route = Route();
        string id = Remember(route);
        Assert.Single(StartTagger.Running(), t => t.Address == StartTagger.AddressOf(id));
        Assert.Equal("isp2 10.2.0.2", Ask(via, "tcp4"));
        via.StandardInput.Close();
        Assert.True(via.WaitForExit(20000));
        Assert.Equal(0, via.ExitCode);
        Assert.Equal("", via.StandardError.ReadToEnd());
        AssertGone(id, route.GetProperty("table").GetUInt32());
    }

    [RootFact]
    public void After_via_is_killed_the_program_stays_routed_and_gc_removes_everything_tagger_included()
    {
        using var via = Start([Clients.Python, "-c", Asker]);
        try
        {
            Assert.Equal("ready", via.StandardOutput.ReadLine());
            var route = Route();
            string id = Remember(route);
            Assert.Equal("isp2 10.2.0.2", Ask(via, "tcp4"));
            // ip netns exec execs via: this pid is via's. The program (its child) lives on.
            Exec(["kill", "-KILL", via.Id.ToString(CultureInfo.InvariantCulture)]);
            Assert.True(via.WaitForExit(20000));
            Assert.Equal("isp2 10.2.0.2", Ask(via, "tcp4"));
            Assert.Equal("isp2 fd02::2", Ask(via, "tcp6"));
            Assert.Single(StartTagger.Running(), t => t.Address == StartTagger.AddressOf(id));
            via.StandardInput.Close(); // the program exits
            Kernel.Via.WaitUntil(() => Via("gc").Out.Contains(id, StringComparison.Ordinal) || !File.Exists(Path.Combine(State, "routes", id + ".json")), "via gc to remove the route", Bound);
            AssertGone(id, route.GetProperty("table").GetUInt32());
        }
        finally
        {
            via.StandardInput.Close();
        }
    }

    /// <summary>A python list literal of these strings.</summary>
    private static string PythonList(IEnumerable<string> items) =>
        "[" + string.Join(", ", items.Select(a => "'" + a.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n") + "'")) + "]";

    [RootFact]
    public void Glibcs_own_resolver_is_not_preloaded_and_its_queries_are_refused_not_leaked()
    {
        // glibc's resolver makes its socket inside libc (not through the interposable socket()):
        // untagged, its query takes the main table (up1) and the egress guard drops it. Documented in
        // the README; this proves it fails closed.
        const string lookup = "import socket\ntry: print(socket.getaddrinfo('" + global::Via.Cli.Internal.WhoamiServer.TestName + "', 80, socket.AF_INET)[0][4][0])\nexcept OSError as e: print('error', e.strerror)";
        int isp1 = T.ServerLog(1).Count, isp2 = T.ServerLog(2).Count;
        var r = Preload([Clients.Python, "-c", lookup], "--dns", Topology.Server4);
        Assert.Equal(0, r.Code);
        Assert.StartsWith("error", r.Out.Trim());
        Assert.Equal("", r.Err);
        Assert.Equal(isp1, T.ServerLog(1).Count); // the query never reached the default route's side
        Assert.Equal(isp2, T.ServerLog(2).Count);
    }

    private static void Exec(string[] command)
    {
        var r = Topology.Run(command[0], command[1..]);
        Assert.True(r.Code == 0, r.Err);
    }
}
