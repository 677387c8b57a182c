using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel.Contract;

/// <summary>
/// The behaviour every mechanism must have (issue 8, part 3), run against each one with
/// <c>via run --method METHOD</c> on a topology of its own, with its own state directory, cgroup
/// subtree and tables (<see cref="ClassState"/>, named after the row, tables from FirstTable): a
/// derived class per mechanism (<see cref="CgroupContract"/>, ...) is its row. A mechanism whose
/// row is not green is not done.
/// </summary>
public abstract class MechanismContract : IClassFixture<TopologyFixture>, IDisposable
{
    private readonly TopologyFixture _fixture;

    protected MechanismContract(TopologyFixture fixture, ITestOutputHelper output)
    {
        _fixture = fixture.Claim(GetType().Name, $"{FirstTable}-{FirstTable + 49}");
        Output = output;
        State = _fixture.State.StateDirectory;
    }

    /// <summary>The mechanism's name (<c>--method</c>).</summary>
    protected abstract string Method { get; }

    /// <summary>The first of 50 routing tables of its own.</summary>
    protected abstract uint FirstTable { get; }

    /// <summary>False for a mechanism that must refuse a static binary (preload).</summary>
    protected virtual bool ServesStatic => true;

    /// <summary>What an IPv6 connect says with the uplink down (the kill switch). A socket's own route
    /// lookup meets the table's unreachable default: EHOSTUNREACH. A forwarded packet (netns) meets it on
    /// the host, which answers with ICMPv6 "no route" (code 0), which the program's kernel turns into ENETUNREACH.</summary>
    protected virtual string KillSwitchError6 => "No route to host";

    /// <summary>
    /// What a TCP connect says when IFACE is down. A mechanism that marks at socket creation gets
    /// the kill switch's unreachable route at connect(): EHOSTUNREACH (IPv6: see <see cref="KillSwitchError6"/>).
    /// One that marks after routing (nft, netcls) has its SYN dropped at the reroute with EHOSTUNREACH,
    /// which TCP's connect ignores and retransmits: the program sees its own timeout, over both
    /// families. Either way nothing leaves.
    /// </summary>
    protected virtual string? KillSwitchTcp => null;

    protected ITestOutputHelper Output { get; }

    protected Topology T => _fixture.Topology;

    /// <summary>The row's state directory.</summary>
    protected string State { get; }

    /// <summary>The row's cgroup subtree (VIA_CGROUP_SUBTREE): its routes' cgroups are below it, in every hierarchy via uses.</summary>
    protected string Subtree => _fixture.State.Subtree;

    /// <summary>bin/via ARGS in the host namespace with this row's state directory, cgroup subtree and tables.</summary>
    protected (int Code, string Out, string Err) Via(params string[] args)
    {
        var r = Kernel.Via.Run(T, args);
        Output.WriteLine($"via {string.Join(' ', args)}: exit {r.Code}\n{r.Out}{r.Err}");
        return r;
    }

    /// <summary>via run --method METHOD --dev up2 [OPTIONS] -- COMMAND.</summary>
    protected (int Code, string Out, string Err) Routed(string[] options, params string[] command) =>
        Via(["run", "--method", Method, "--dev", "up2", .. options, "--", .. command]);

    protected (int Code, string Out, string Err) Routed(params string[] command) => Routed([], command);

    /// <summary>via's own objects in the host namespace: rules and routes with its protocol, its nftables tables, and the row's journals.</summary>
    protected virtual string ViaObjects()
    {
        string rules = T.InHost(["sh", "-c", "{ ip rule; ip -6 rule; } | grep -w 'proto 86'; ip route show table all proto 86; ip -6 route show table all proto 86; nft list tables 2>/dev/null | grep -w 'via_t[0-9]*'"]).Out;
        string journals = Directory.Exists(Path.Combine(State, "routes")) ? string.Join(',', Directory.EnumerateFiles(Path.Combine(State, "routes"))) : "";
        return rules + journals;
    }

    protected void AssertNothingLeft() => Kernel.Via.WaitUntil(() => ViaObjects().Length == 0, $"route objects of method {Method} to be gone: {ViaObjects()}");

    private static string Answer(string address) => address.Contains(':') ? "isp2 fd02::2" : "isp2 10.2.0.2";

    public static TheoryData<string, string, string> Programs => new()
    {
        { "curl", "tcp", Topology.Server4 },
        { "curl", "tcp", Topology.Server6 },
        { "python", "udp", Topology.Server4 },
        { "python", "udp", Topology.Server6 },
        { "busybox", "tcp", Topology.Server4 },
        { "busybox", "tcp", Topology.Server6 },
    };

    [RootTheory]
    [MemberData(nameof(Programs))]
    public void The_program_leaves_through_the_route_with_its_address(string program, string proto, string address)
    {
        string[] client = Clients.Named(program, proto, address);
        var r = Routed(client);
        if (program == "busybox" && !ServesStatic)
        {
            // Refused up front, in one line, and not run at all (nothing reached any server).
            Assert.Equal(125, r.Code);
            Assert.Contains("static", r.Err);
            Assert.Equal("", r.Out);
            return;
        }
        Assert.Equal(0, r.Code);
        Assert.Equal(Answer(address), r.Out.Trim());
        AssertNothingLeft();
    }

    [RootFact]
    public void An_unprivileged_program_is_routed_and_its_sockets_are_its_own()
    {
        const string who = "import os, socket; s = socket.create_connection(('198.51.100.1', 8080), timeout=5); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(os.getuid(), s.makefile().read().split('\\n')[-2])";
        var r = Routed(["--user", "nobody"], Clients.Python, "-c", who);
        Assert.Equal(0, r.Code);
        Assert.Equal("65534 isp2 10.2.0.2", r.Out.Trim());
    }

    [RootFact]
    public void A_child_and_a_daemonized_grandchild_are_routed()
    {
        string outFile = Path.Combine(Path.GetTempPath(), $"via-contract-daemon-{Guid.NewGuid():N}");
        try
        {
            string ask = string.Join(' ', Clients.DotNet("tcp", Topology.Server4));
            // The child asks now; the grandchild leaves the session and asks once via has returned.
            string flag = outFile + ".go";
            var r = Routed("sh", "-c", $"{ask}; setsid sh -c 'while [ ! -e {flag} ]; do sleep 0.05; done; {ask} > {outFile}' </dev/null >/dev/null 2>&1 & exit 0");
            Assert.Equal(0, r.Code);
            Assert.Equal("isp2 10.2.0.2", r.Out.Trim());
            Assert.Contains("proto 86", ViaObjects()); // the route stays for the grandchild
            File.WriteAllText(flag, "");
            Kernel.Via.WaitUntil(() => File.Exists(outFile) && File.ReadAllText(outFile).EndsWith('\n'), "the daemonized grandchild's answer");
            Assert.Equal("isp2 10.2.0.2", File.ReadAllText(outFile).Trim());
            AssertNothingLeft(); // the reaper removed the route once the grandchild was gone
        }
        finally
        {
            File.WriteAllText(outFile + ".go", ""); // a grandchild still waiting goes on, and ends
            File.Delete(outFile);
            Kernel.Via.WaitUntil(() => T.InHost(["pgrep", "-f", outFile + ".go"]).Code != 0, "the grandchild to end");
            File.Delete(outFile + ".go");
        }
    }

    [RootFact]
    public void Strict_rp_filter_passes_the_replies()
    {
        T.InHost(["sysctl", "-qw", "net.ipv4.conf.up2.rp_filter=1", "net.ipv4.conf.all.rp_filter=1"]);
        try
        {
            var r = Routed(Clients.PythonClient("udp", Topology.Server4));
            Assert.Equal(0, r.Code);
            Assert.Equal("isp2 10.2.0.2", r.Out.Trim());
        }
        finally
        {
            T.InHost(["sysctl", "-qw", "net.ipv4.conf.up2.rp_filter=0", "net.ipv4.conf.all.rp_filter=0"]);
        }
    }

    [RootFact]
    public void When_the_uplink_goes_down_it_fails_closed_and_nothing_leaks()
    {
        string flag = Path.Combine(Path.GetTempPath(), $"via-contract-kill-{Guid.NewGuid():N}");
        string program = $$"""
            import os, socket, time
            def ask(fam, addr):
                try:
                    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(3); s.connect((addr, 8080))
                    s.sendall(b'GET / HTTP/1.0\r\n\r\n'); return s.makefile().read().split('\n')[-2]
                except OSError as e:
                    return 'error ' + (os.strerror(e.errno) if e.errno else type(e).__name__)
            print('before', ask(socket.AF_INET, '198.51.100.1'), flush=True)
            while not os.path.exists('{{flag}}'): time.sleep(0.05)
            print('tcp4', ask(socket.AF_INET, '198.51.100.1'), flush=True)
            print('tcp6', ask(socket.AF_INET6, '2001:db8:100::1'), flush=True)
            """;
        int isp1 = T.ServerLog(1).Count;
        using var via = Kernel.Via.Start(T, ["run", "--method", Method, "--dev", "up2", "--", Clients.Python, "-c", program]);
        try
        {
            Assert.Equal("before isp2 10.2.0.2", via.StandardOutput.ReadLine());
            Topology.Ip("-n", T.Host, "link", "set", "up2", "down");
            File.WriteAllText(flag, "");
            Assert.Equal("tcp4 " + (KillSwitchTcp ?? "error No route to host"), via.StandardOutput.ReadLine());
            Assert.Equal("tcp6 " + (KillSwitchTcp ?? $"error {KillSwitchError6}"), via.StandardOutput.ReadLine());
            Assert.True(via.WaitForExit(30000));
            Assert.Equal(isp1, T.ServerLog(1).Count); // not one connection leaked out up1
        }
        finally
        {
            File.Delete(flag);
            if (!via.HasExited) via.Kill(entireProcessTree: true);
            Topology.Ip("-n", T.Host, "link", "set", "up2", "up");
            // The kernel drops up2's IPv6 address with the link (keep_addr_on_down=0): later tests need it.
            Topology.Run("ip", ["-n", T.Host, "addr", "replace", "fd02::2/64", "dev", "up2", "nodad"]);
            Topology.Run("ip", ["-n", T.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200"]);
            Topology.Run("ip", ["-n", T.Host, "-6", "route", "replace", "default", "via", "fd02::1", "dev", "up2", "table", "200"]);
        }
        AssertNothingLeft();
    }

    [RootFact]
    public void Another_program_at_the_same_time_keeps_the_default_route()
    {
        using var held = Kernel.Via.Start(T, ["run", "--method", Method, "--dev", "up2", "--", "sh", "-c", "read line"], input: true);
        try
        {
            Kernel.Via.WaitUntil(() => ViaObjects().Contains("proto 86", StringComparison.Ordinal), "the route to be up");
            var plain = T.InHost(Clients.PythonClient("tcp", Topology.Server4), Kernel.Via.Timeout);
            Assert.Equal("isp1 10.1.0.2", plain.Out.Trim());
        }
        finally
        {
            held.Kill(entireProcessTree: true);
            held.WaitForExit();
            Via("gc");
        }
        AssertNothingLeft();
    }

    [RootFact]
    public void After_SIGKILL_of_via_gc_removes_everything()
    {
        using var held = Kernel.Via.Start(T, ["run", "--method", Method, "--dev", "up2", "--", "sleep", "600"]);
        // The program, as via ls shows it in the row's route (not any 'sleep 600' of the host).
        List<int> Program() => [.. Kernel.Via.Routes(T).SelectMany(r => r.GetProperty("processes").EnumerateArray())
            .Where(p => p.GetProperty("command").GetString() == "sleep 600").Select(p => p.GetProperty("pid").GetInt32())];
        Kernel.Via.WaitUntil(() => Program().Count > 0, "the program to run");
        held.Kill(); // SIGKILL of via alone: its program lives on, routed
        held.WaitForExit();
        Assert.Contains("proto 86", ViaObjects());
        foreach (int pid in Program()) Topology.Run("kill", ["-KILL", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Kernel.Via.WaitUntil(() => Program().Count == 0, "the program to be gone");
        Assert.Equal(0, Via("gc").Code);
        AssertNothingLeft();
    }

    /// <summary>After each test, what it left is collected (the state directory and subtree go with the class: <see cref="ClassState"/>).</summary>
    public void Dispose()
    {
        Via("gc");
        GC.SuppressFinalize(this);
    }
}

/// <summary>The contract's row for the cgroup + eBPF mechanism.</summary>
public sealed class CgroupContract(TopologyFixture fixture, ITestOutputHelper output) : MechanismContract(fixture, output)
{
    protected override string Method => "cgroup";
    protected override uint FirstTable => 23500;
}

/// <summary>The contract's row for the seccomp user-notification mechanism (its own checks: SeccompTests).</summary>
public sealed class SeccompContract(TopologyFixture fixture, ITestOutputHelper output) : MechanismContract(fixture, output)
{
    protected override string Method => "seccomp";
    protected override uint FirstTable => 23350;
}
