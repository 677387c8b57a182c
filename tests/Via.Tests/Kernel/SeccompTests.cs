using System.Globalization;
using System.Text.Json;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// The contract (issue 8, section 3) for <c>via run --method seccomp</c>: the uplink proven by the
/// server, both families, TCP and UDP, static and dynamic binaries, an unprivileged program, a child
/// and a daemonized grandchild, strict rp_filter, the kill switch, non-interference, nothing left
/// after exit and after SIGKILL of via + gc; and what is the mechanism's own: SO_MARK and
/// SO_BINDTODEVICE refused, socket() fails once the supervisor is killed, the sockets' owner is the
/// program's user, and the egress guard sees the supervisor's sockets.
/// This class has its own topology, state directory and tables (23300-23349).
/// </summary>
public sealed class SeccompTests(TopologyFixture<SeccompTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<SeccompTests>>, IDisposable
{
    private Topology T => fixture.Topology;

    private readonly string _state = Path.Combine(Path.GetTempPath(), $"via-test-seccomp-{Guid.NewGuid():N}");
    private readonly string _config = WriteConfig();

    private static string WriteConfig()
    {
        string file = Path.Combine(Path.GetTempPath(), $"via-test-seccomp-{Guid.NewGuid():N}.conf");
        File.WriteAllText(file, "tables = 23300-23349\n"); // 23350-23399: its contract row (SeccompContract)
        return file;
    }

    public void Dispose()
    {
        if (Directory.Exists(_state)) Directory.Delete(_state, recursive: true);
        File.Delete(_config);
    }

    private string[] Env => ["env", $"VIA_STATE_DIR={_state}", $"VIA_CONFIG={_config}"];

    /// <summary>bin/via ARGS in the host namespace, with this class's state and tables.</summary>
    private (int Code, string Out, string Err) Via_(params string[] args)
    {
        var r = T.InHost([.. Env, ViaBinary.Path, .. args], Kernel.Via.Timeout);
        output.WriteLine($"via {string.Join(' ', args)}\nexit {r.Code}\nstdout: {r.Out}\nstderr: {r.Err}");
        return r;
    }

    /// <summary>via run --method seccomp --dev up2 [OPTIONS] -- COMMAND.</summary>
    private (int Code, string Out, string Err) Seccomp(string[] options, params string[] command) =>
        Via_(["run", "--method", "seccomp", "--dev", "up2", .. options, "--", .. command]);

    private (int Code, string Out, string Err) Seccomp(params string[] command) => Seccomp([], command);

    private System.Diagnostics.Process StartSeccomp(string[] options, params string[] command) =>
        Kernel.Via.Start(T, ["run", "--method", "seccomp", "--dev", "up2", .. options, "--", .. command],
            new Dictionary<string, string> { ["VIA_STATE_DIR"] = _state, ["VIA_CONFIG"] = _config });

    private static string Up2Answer(string address) => address.Contains(':') ? "isp2 fd02::2" : "isp2 10.2.0.2";

    private List<JsonElement> Routes()
    {
        var r = T.InHost([.. Env, ViaBinary.Path, "ls", "--json"]);
        Assert.True(r.Code == 0, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        return [.. doc.RootElement.EnumerateArray().Select(e => e.Clone())];
    }

    /// <summary>What this class's routes could leave: rules and routes of its namespace, journals of its state directory.</summary>
    private (string Rules, string Routes, string Journals) Snapshot()
    {
        string Text(params string[] args) => Topology.Run("ip", args).Out;
        string journals = Path.Combine(_state, "routes");
        return (Text("-n", T.Host, "rule") + Text("-n", T.Host, "-6", "rule"),
            Text("-n", T.Host, "route", "show", "table", "all") + Text("-n", T.Host, "-6", "route", "show", "table", "all"),
            Directory.Exists(journals) ? string.Join('\n', Directory.EnumerateFiles(journals).Order()) : "");
    }

    /// <summary>The pids of via-seccomp processes in the cgroup of <paramref name="pid"/>.</summary>
    private static List<int> SupervisorsBeside(int pid)
    {
        string cgroup = File.ReadAllText($"/proc/{pid}/cgroup");
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int other)) continue;
            try
            {
                if (File.ReadAllText(Path.Combine(dir, "comm")).Trim() == "via-seccomp" && File.ReadAllText(Path.Combine(dir, "cgroup")) == cgroup)
                    found.Add(other);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return found;
    }

    private static bool SupervisorsWithMark(string mark) =>
        Directory.EnumerateDirectories("/proc").Any(dir =>
        {
            try
            {
                var args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                return args.Length > 2 && args[0].EndsWith("/via-seccomp", StringComparison.Ordinal) && Number(args[2]) == Number(mark);
            }
            catch (IOException) { return false; }
            catch (UnauthorizedAccessException) { return false; }
        });

    private static uint Number(string text) => text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
        ? uint.Parse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture)
        : uint.Parse(text, CultureInfo.InvariantCulture);

    [RootFact]
    public void Doctor_finds_the_method_usable_and_auto_keeps_cgroup_first()
    {
        var r = Via_("doctor", "--json");
        using var doc = JsonDocument.Parse(r.Out);
        var checks = doc.RootElement.EnumerateArray().ToDictionary(c => c.GetProperty("check").GetString()!, c => c);
        Assert.Equal("ok", checks["method seccomp"].GetProperty("status").GetString());
        Assert.Contains("ADDFD_FLAG_SEND", checks["method seccomp"].GetProperty("detail").GetString());
        Assert.Contains("uses cgroup", checks["method auto"].GetProperty("detail").GetString());
        // --dry-run says how the program would be tagged.
        var dry = Via_("run", "--method", "seccomp", "--dev", "up2", "--dry-run", "--", "/bin/true");
        Assert.Equal(0, dry.Code);
        Assert.Contains("mechanism seccomp", dry.Out);
        Assert.Contains("via-seccomp", dry.Out);
    }

    [RootTheory]
    [MemberData(nameof(EgressTests.Programs), MemberType = typeof(EgressTests))]
    public void Program_leaves_through_the_chosen_uplink_with_its_address(string program, string proto, string address)
    {
        var plain = T.InHost(Clients.Named(program, proto, address), Kernel.Via.Timeout);
        Assert.Equal(address.Contains(':') ? "isp1 fd01::2" : "isp1 10.1.0.2", plain.Out.Trim());
        var r = Seccomp(Clients.Named(program, proto, address));
        Assert.Equal(0, r.Code);
        Assert.Equal(Up2Answer(address), r.Out.Trim());
    }

    [RootFact]
    public void An_unprivileged_program_is_routed_and_owns_its_sockets()
    {
        // The socket's owner (sk_uid, what '-m owner' and nft 'skuid' match) is read back from
        // /proc/net/tcp, where a listening socket shows it; SOCK_RAW stays refused to nobody.
        const string who = """
            import os, socket, errno
            s = socket.create_connection(('198.51.100.1', 8080), timeout=5); s.sendall(b'GET / HTTP/1.0\r\n\r\n')
            answer = s.makefile().read().split('\n')[-2]
            l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
            port = '%04X' % l.getsockname()[1]
            owner = [f.split()[7] for f in open('/proc/net/tcp') if f.split()[1].endswith(':' + port)]
            try: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1); raw = 'raw allowed'
            except OSError as e: raw = 'raw ' + errno.errorcode[e.errno]
            print(os.getuid(), os.getgid(), answer, 'owner', *owner, raw)
            """;
        var r = Seccomp(["--user", "nobody"], Clients.Python, "-c", who);
        Assert.Equal(0, r.Code);
        Assert.Equal("65534 65534 isp2 10.2.0.2 owner 65534 raw EPERM", r.Out.Trim());

        // A root program's sockets are root's.
        var root = Seccomp(["--user", "root"], Clients.Python, "-c", who);
        Assert.Equal("0 0 isp2 10.2.0.2 owner 0 raw allowed", root.Out.Trim());
    }

    [RootFact]
    public void Children_and_a_daemonized_grandchild_are_routed()
    {
        string script = $"{string.Join(' ', Clients.DotNet("tcp", Topology.Server4))}; sh -c '{string.Join(' ', Clients.DotNet("udp", Topology.Server6))}'";
        var r = Seccomp("sh", "-c", script);
        Assert.Equal(0, r.Code);
        Assert.Equal(["isp2 10.2.0.2", "isp2 fd02::2"], r.Out.Trim().Split('\n'));

        // A daemon (double fork, setsid) that connects after via has returned.
        string file = Path.Combine(Path.GetTempPath(), $"via-seccomp-daemon-{Guid.NewGuid():N}");
        string daemon = $$"""
            import os, socket, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    fd = os.open('/dev/null', os.O_RDWR)
                    for i in (0, 1, 2): os.dup2(fd, i)
                    while not os.path.exists('{{file}}.go'): time.sleep(0.05)
                    s = socket.create_connection(('198.51.100.1', 8080), timeout=5); s.sendall(b'GET / HTTP/1.0\r\n\r\n')
                    a = s.makefile().read().split('\n')[-2]
                    with open('{{file}}.tmp', 'w') as f: f.write(a)
                    os.rename('{{file}}.tmp', '{{file}}')
                os._exit(0)
            os.wait()
            """;
        try
        {
            var before = Snapshot();
            var d = Seccomp(Clients.Python, "-c", daemon);
            Assert.Equal(0, d.Code);
            string mark = Assert.Single(Routes()).GetProperty("mark").GetString()!;
            File.WriteAllText(file + ".go", "");
            Kernel.Via.WaitUntil(() => File.Exists(file), "the daemon's answer");
            Assert.Equal("isp2 10.2.0.2", File.ReadAllText(file));
            // When the daemon is gone, so are its supervisor and its route.
            Kernel.Via.WaitUntil(() => Routes().Count == 0 && !SupervisorsWithMark(mark), "the route and supervisor to go after the daemon");
            Assert.Equal(before, Snapshot());
        }
        finally
        {
            foreach (var f in new[] { file, file + ".go", file + ".tmp" }) File.Delete(f);
        }
    }

    [RootFact]
    public void Strict_rp_filter_is_honoured_without_changing_it()
    {
        foreach (var key in new[] { "all", "up2" })
            Assert.Equal(0, T.InHost(["sysctl", "-qw", $"net.ipv4.conf.{key}.rp_filter=1"]).Code);
        try
        {
            Assert.Equal("isp2 10.2.0.2", Seccomp(Clients.DotNet("tcp", Topology.Server4)).Out.Trim());
            Assert.Equal("isp2 10.2.0.2", Seccomp(Clients.PythonClient("udp", Topology.Server4)).Out.Trim());
            Assert.Equal("1", T.InHost(["sysctl", "-n", "net.ipv4.conf.up2.rp_filter"]).Out.Trim());
        }
        finally
        {
            foreach (var key in new[] { "all", "up2" }) T.InHost(["sysctl", "-qw", $"net.ipv4.conf.{key}.rp_filter=0"]);
        }
    }

    [RootFact]
    public void Traffic_fails_closed_when_the_uplink_goes_down()
    {
        string flag = Path.Combine(Path.GetTempPath(), $"via-seccomp-kill-{Guid.NewGuid():N}");
        string program = Clients.KillSwitchProbe(flag);
        int isp1Before = T.ServerLog(1).Count;
        using var via = StartSeccomp([], Clients.Python, "-c", program);
        try
        {
            Assert.Equal("before isp2 10.2.0.2", via.StandardOutput.ReadLine());
            Topology.Ip("-n", T.Host, "link", "set", "up2", "down");
            File.WriteAllText(flag, "");
            var lines = new List<string>();
            for (string? line; (line = via.StandardOutput.ReadLine()) is not null;) lines.Add(line);
            Assert.True(via.WaitForExit(30000));
            output.WriteLine(string.Join('\n', lines) + via.StandardError.ReadToEnd());
            Assert.Equal(4, lines.Count);
            foreach (var line in lines) Assert.EndsWith(" error No route to host", line);
            Assert.Equal(isp1Before, T.ServerLog(1).Count);
        }
        finally
        {
            File.Delete(flag);
            if (!via.HasExited) via.Kill(entireProcessTree: true);
            Topology.Ip("-n", T.Host, "link", "set", "up2", "up");
            // IPv6 addresses go with the link (keep_addr_on_down is 0 by default): put up2's back, for the other tests.
            Topology.Run("ip", ["-n", T.Host, "-6", "addr", "replace", "fd02::2/64", "dev", "up2", "nodad"]);
            Topology.Run("ip", ["-n", T.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200"]);
            Topology.Run("ip", ["-n", T.Host, "-6", "route", "replace", "default", "via", "fd02::1", "dev", "up2", "table", "200"]);
        }
    }

    [RootFact]
    public void Other_programs_keep_their_route_while_a_routed_one_runs()
    {
        string flag = Path.Combine(Path.GetTempPath(), $"via-seccomp-other-{Guid.NewGuid():N}");
        string program = $"import os, time\nprint('up', flush=True)\nwhile not os.path.exists('{flag}'): time.sleep(0.05)\nos.execv('{ViaBinary.Path}', [{string.Join(", ", Clients.DotNet("tcp", Topology.Server4).Select(a => $"'{a}'"))}])";
        using var via = StartSeccomp([], Clients.Python, "-c", program);
        try
        {
            Assert.Equal("up", via.StandardOutput.ReadLine());
            Assert.Equal("isp1 10.1.0.2", T.InHost(Clients.DotNet("tcp", Topology.Server4)).Out.Trim());
            Assert.Equal("isp1 fd01::2", T.InHost(Clients.PythonClient("udp", Topology.Server6)).Out.Trim());
            File.WriteAllText(flag, "");
            Assert.Equal("isp2 10.2.0.2", via.StandardOutput.ReadLine());
            Assert.True(via.WaitForExit(30000));
            Assert.Equal(0, via.ExitCode);
        }
        finally
        {
            File.Delete(flag);
            if (!via.HasExited) via.Kill(entireProcessTree: true);
        }
    }

    [RootFact]
    public void The_filter_refuses_mark_and_device_changes_and_other_ways_around_it()
    {
        // As root, where CAP_NET_ADMIN would otherwise allow SO_MARK.
        const string tries = """
            import ctypes, errno, socket
            libc = ctypes.CDLL(None, use_errno=True)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            print('mark', 'set' if s.getsockopt(socket.SOL_SOCKET, socket.SO_MARK) != 0 else 'none', 'set' if s6.getsockopt(socket.SOL_SOCKET, socket.SO_MARK) != 0 else 'none')
            def attempt(name, f):
                try: f(); print(name, 'allowed')
                except OSError as e: print(name, errno.errorcode[e.errno])
            attempt('SO_MARK', lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 0))
            attempt('SO_BINDTODEVICE', lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'up1\0'))
            attempt('SO_BINDTOIFINDEX', lambda: s6.setsockopt(socket.SOL_SOCKET, 62, socket.if_nametoindex('up1')))
            attempt('SO_DONTROUTE', lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_DONTROUTE, 1))
            attempt('SO_RCVBUF', lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536))
            def call(name, nr, *args):
                r = libc.syscall(nr, *args); print(name, 'allowed' if r >= 0 else errno.errorcode[ctypes.get_errno()])
            call('unshare(CLONE_NEWNET)', 272, 0x40000000)
            call('io_uring_setup', 425, 1, ctypes.create_string_buffer(120))
            call('clone3', 435, 0, 0)
            call('seccomp(SET_MODE_FILTER, NEW_LISTENER)', 317, 1, 8, None)
            """;
        var r = Seccomp(["--user", "root"], Clients.Python, "-c", tries);
        Assert.Equal(0, r.Code);
        Assert.Equal([
            "mark set set", "SO_MARK EPERM", "SO_BINDTODEVICE EPERM", "SO_BINDTOIFINDEX EPERM", "SO_DONTROUTE EPERM", "SO_RCVBUF allowed",
            "unshare(CLONE_NEWNET) EPERM", "io_uring_setup ENOSYS", "clone3 ENOSYS", "seccomp(SET_MODE_FILTER, NEW_LISTENER) EPERM"], r.Out.Trim().Split('\n'));
    }

    [RootFact]
    public void Sockets_keep_the_flags_and_errors_a_plain_socket_would_have()
    {
        // As nobody: what socket() answers under the supervisor is what the kernel would answer the program.
        const string checks = """
            import ctypes, errno, fcntl, os, resource, signal, socket, threading
            libc = ctypes.CDLL(None, use_errno=True)
            def make(t, proto=0):
                fd = libc.socket(socket.AF_INET, t, proto)
                return fd if fd >= 0 else -ctypes.get_errno()
            fd = make(socket.SOCK_STREAM); print('plain cloexec', fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC, 'nonblock', 1 if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK else 0)
            fd = make(socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK); print('flags cloexec', fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC, 'nonblock', 1 if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK else 0)
            print('bad protocol', errno.errorcode[-make(socket.SOCK_STREAM, 17)])
            # Concurrent threads, and signals arriving all the time (a 0.5 ms timer): every socket is
            # marked, none is lost or doubled (a signal after the supervisor has taken the call waits for it: WAIT_KILLABLE_RECV).
            marks, lock = [], threading.Lock()
            def many():
                for i in range(100):
                    s = socket.socket(socket.AF_INET6 if i % 2 else socket.AF_INET, socket.SOCK_DGRAM)
                    with lock: marks.append(s.getsockopt(socket.SOL_SOCKET, socket.SO_MARK) != 0)
                    s.close()
            # SA_RESTART, as glibc's signal() and Go give: a signal that comes before the supervisor
            # has taken the call restarts it (without SA_RESTART socket() fails with EINTR, see README).
            signal.signal(signal.SIGALRM, lambda *a: None); signal.siginterrupt(signal.SIGALRM, False)
            signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
            before = len(os.listdir('/proc/self/fd'))
            ts = [threading.Thread(target=many) for _ in range(8)]
            [t.start() for t in ts]; [t.join() for t in ts]
            signal.setitimer(signal.ITIMER_REAL, 0)
            print('threads', len(marks), all(marks), 'fds', len(os.listdir('/proc/self/fd')) - before)
            # The program's own fd limit holds: the supervisor's install fails as the program's socket() would.
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
            held = []
            while True:
                fd = make(socket.SOCK_STREAM)
                if fd < 0: print('at the limit', errno.errorcode[-fd]); break
                held.append(fd)
            """;
        var r = Seccomp(["--user", "nobody"], Clients.Python, "-c", checks);
        Assert.Equal(0, r.Code);
        Assert.Equal(["plain cloexec 0 nonblock 0", "flags cloexec 1 nonblock 1", "bad protocol EPROTONOSUPPORT", "threads 800 True fds 0", "at the limit EMFILE"],
            r.Out.Trim().Split('\n'));
    }

    [RootFact]
    public void Other_abis_and_high_argument_bits_do_not_pass_the_filter()
    {
        // A 64-bit program can make x32 calls (nr | __X32_SYSCALL_BIT), and pass a domain with high
        // bits set (the kernel reads an int): the first are refused, the second is still notified.
        // (The i386 path, int $0x80, needs IA32 emulation; seccomp_abi.c has it behind ABI_I386.)
        string dir = Directory.CreateTempSubdirectory("via-seccomp-abi-").FullName;
        try
        {
            string binary = Path.Combine(dir, "abi");
            var cc = Topology.Run("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-o", binary,
                Path.Combine(ViaBinary.RepositoryRoot, "tests", "Via.Tests", "Kernel", "Scripts", "seccomp_abi.c")]);
            Assert.True(cc.Code == 0, "gcc: " + cc.Err);
            var r = Seccomp(binary);
            Assert.Equal(0, r.Code);
            Assert.Equal(["x32 socket error 38", "x64 socket, high bits in the domain fd marked"], r.Out.Trim().Split('\n'));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [RootFact]
    public void Where_cgroup_ebpf_is_refused_it_still_routes_without_the_guard()
    {
        // bpf() answering EPERM, as in a container: the cgroup method cannot make its route; the
        // seccomp method makes it without the egress guard, says so, and routes all the same.
        string dir = Directory.CreateTempSubdirectory("via-seccomp-nobpf-").FullName;
        try
        {
            string noBpf = Path.Combine(dir, "no_bpf");
            var cc = Topology.Run("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-o", noBpf,
                Path.Combine(ViaBinary.RepositoryRoot, "tests", "Via.Tests", "Kernel", "Scripts", "no_bpf.c")]);
            Assert.True(cc.Code == 0, "gcc: " + cc.Err);
            var before = Snapshot();
            var r = T.InHost([.. Env, noBpf, ViaBinary.Path, "run", "--method", "seccomp", "--dev", "up2", "--", .. Clients.PythonClient("tcp", Topology.Server4)], Kernel.Via.Timeout);
            output.WriteLine($"exit {r.Code}\n{r.Out}{r.Err}");
            Assert.Equal(0, r.Code);
            Assert.Equal("isp2 10.2.0.2", r.Out.Trim());
            Assert.Contains("no egress guard for this route", r.Err);
            var cgroup = T.InHost([.. Env, noBpf, ViaBinary.Path, "run", "--method", "cgroup", "--dev", "up2", "--", "true"], Kernel.Via.Timeout);
            Assert.Equal(125, cgroup.Code);
            // --method auto passes over the cgroup method there, to one that works.
            var auto = T.InHost([.. Env, noBpf, ViaBinary.Path, "run", "--verbose", "--dev", "up2", "--", .. Clients.PythonClient("tcp", Topology.Server4)], Kernel.Via.Timeout);
            output.WriteLine($"auto: exit {auto.Code}\n{auto.Out}{auto.Err}");
            Assert.Equal(0, auto.Code);
            Assert.Equal("isp2 10.2.0.2", auto.Out.Trim());
            Assert.Contains("not cgroup: this host refuses cgroup eBPF programs", auto.Err);
            Kernel.Via.WaitUntil(() => Routes().Count == 0, "the routes to go");
            Assert.Equal(before, Snapshot());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [RootFact]
    public void The_egress_guard_sees_the_supervisors_sockets()
    {
        // A datagram whose IP_PKTINFO names up1: the egress guard on the route's cgroup refuses it,
        // which it can only do if the socket (made by the supervisor) carries the route's cgroup.
        const string escape = """
            import socket, struct
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.sendmsg([b'x'], [(socket.IPPROTO_IP, 8, struct.pack('@i4s4s', socket.if_nametoindex('up1'), b'\0' * 4, b'\0' * 4))], 0, ('10.1.0.1', 40999)); print('sent')
            except OSError as e: print('refused', e.strerror)
            """;
        var r = Seccomp(Clients.Python, "-c", escape);
        Assert.Equal("refused Operation not permitted", r.Out.Trim());
    }

    [RootFact]
    public void Once_the_supervisor_is_killed_the_program_cannot_open_sockets()
    {
        const string program = """
            import errno, os, socket, sys
            print(os.getpid(), flush=True)
            socket.socket().close()
            sys.stdin.readline()
            for fam in (socket.AF_INET, socket.AF_INET6):
                try: socket.socket(fam); print('socket allowed')
                except OSError as e: print('socket', errno.errorcode[e.errno])
            socket.socket(socket.AF_UNIX).close(); print('unix allowed')
            """;
        var start = new System.Diagnostics.ProcessStartInfo("ip") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", T.Host, ViaBinary.Path, "run", "--method", "seccomp", "--dev", "up2", "--user", "nobody", "--", Clients.Python, "-c", program })
            start.ArgumentList.Add(a);
        start.Environment["VIA_STATE_DIR"] = _state;
        start.Environment["VIA_CONFIG"] = _config;
        using var via = System.Diagnostics.Process.Start(start)!;
        try
        {
            int pid = int.Parse(via.StandardOutput.ReadLine()!, CultureInfo.InvariantCulture);
            var supervisors = SupervisorsBeside(pid);
            int supervisor = Assert.Single(supervisors);
            // It runs with the program's filesystem uid, and only CAP_NET_ADMIN.
            string status = File.ReadAllText($"/proc/{supervisor}/status");
            Assert.Contains("Uid:\t0\t0\t0\t65534", status); // uid 0 without capabilities: the program cannot signal it; fsuid: the sockets are its user's
            Assert.Contains("CapEff:\t0000000000001000", status);
            // So the program's user cannot stop it (which would keep the route populated) nor kill it.
            var stop = Topology.Run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "kill", "-STOP", supervisor.ToString(CultureInfo.InvariantCulture)]);
            Assert.NotEqual(0, stop.Code);
            Assert.Equal(0, Topology.Run("kill", ["-KILL", supervisor.ToString(CultureInfo.InvariantCulture)]).Code);
            Kernel.Via.WaitUntil(() => !Directory.Exists($"/proc/{supervisor}") || File.ReadAllText($"/proc/{supervisor}/stat").Contains(") Z "), "the supervisor to die");
            via.StandardInput.WriteLine();
            via.StandardInput.Close();
            var lines = new List<string>();
            for (string? line; (line = via.StandardOutput.ReadLine()) is not null;) lines.Add(line);
            Assert.True(via.WaitForExit(30000));
            Assert.Equal(["socket ENOSYS", "socket ENOSYS", "unix allowed"], lines);
        }
        finally
        {
            if (!via.HasExited) via.Kill(entireProcessTree: true);
        }
    }

    [RootFact]
    public void Nothing_is_left_after_exit_nor_after_via_is_killed_and_gc_runs()
    {
        var before = Snapshot();
        var r = Seccomp(Clients.DotNet("tcp", Topology.Server4));
        Assert.Equal("isp2 10.2.0.2", r.Out.Trim());
        Kernel.Via.WaitUntil(() => Routes().Count == 0, "the route to go");
        Assert.Equal(before, Snapshot());

        const string loop = """
            import socket, sys
            s = socket.create_connection(('198.51.100.1', 8080), timeout=3); s.sendall(b'GET / HTTP/1.0\r\n\r\n')
            print(s.makefile().read().split('\n')[-2], flush=True)
            sys.stdin.readline()
            """;
        var start = new System.Diagnostics.ProcessStartInfo("ip") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", T.Host, ViaBinary.Path, "run", "--method", "seccomp", "--dev", "up2", "--", Clients.Python, "-c", loop })
            start.ArgumentList.Add(a);
        start.Environment["VIA_STATE_DIR"] = _state;
        start.Environment["VIA_CONFIG"] = _config;
        using var via = System.Diagnostics.Process.Start(start)!;
        string mark = "";
        try
        {
            Assert.Equal("isp2 10.2.0.2", via.StandardOutput.ReadLine());
            mark = Assert.Single(Routes()).GetProperty("mark").GetString()!;
            Assert.True(SupervisorsWithMark(mark));
            Assert.Equal(0, Topology.Run("kill", ["-KILL", via.Id.ToString(CultureInfo.InvariantCulture)]).Code);
            Assert.True(via.WaitForExit(30000));
            // The orphaned program still runs (on its stdin), its route with it: gc keeps it.
            Assert.Equal(0, Via_("gc").Code);
            Assert.Single(Routes());
            via.StandardInput.WriteLine();
            via.StandardInput.Close();
            Kernel.Via.WaitUntil(() => !SupervisorsWithMark(mark), "the supervisor to exit after the program");
            Assert.Equal(0, Via_("gc").Code);
            Assert.Empty(Routes());
            Assert.Equal(before, Snapshot());
        }
        finally
        {
            if (!via.HasExited) via.Kill(entireProcessTree: true);
            Via_("gc");
        }
    }
}
