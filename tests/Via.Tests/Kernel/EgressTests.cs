using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// Egress through the chosen uplink, proven by the server behind it: the same address answers
/// behind both uplinks with its own name and the source address it saw.
/// </summary>
public sealed class EgressTests(TopologyFixture<EgressTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<EgressTests>>
{
    private Topology T => fixture.Topology;

    private void AssertThroughUp2((int Code, string Out, string Err) r, string expected)
    {
        output.WriteLine($"exit {r.Code}\nstdout: {r.Out}\nstderr: {r.Err}");
        Assert.Equal(0, r.Code);
        Assert.Equal(expected, r.Out.Trim());
    }

    public static TheoryData<string, string, string> Programs => new()
    {
        { "curl", "tcp", Topology.Server4 },
        { "curl", "tcp", Topology.Server6 },
        { "busybox", "tcp", Topology.Server4 },
        { "busybox", "tcp", Topology.Server6 },
        { "python", "tcp", Topology.Server4 },
        { "python", "udp", Topology.Server4 },
        { "python", "tcp", Topology.Server6 },
        { "python", "udp", Topology.Server6 },
        { "dotnet", "tcp", Topology.Server4 },
        { "dotnet", "udp", Topology.Server6 },
    };

    private static string Up2Answer(string address) => address.Contains(':') ? "isp2 fd02::2" : "isp2 10.2.0.2";

    [RootFact]
    public void Busybox_is_a_static_binary()
    {
        var (code, outp, _) = Topology.Run("file", ["-L", "/bin/busybox"]);
        Assert.Equal(0, code);
        Assert.Contains("statically linked", outp);
    }

    [RootTheory]
    [MemberData(nameof(Programs))]
    public void Program_leaves_through_the_chosen_uplink_with_its_address(string program, string proto, string address)
    {
        // Unrouted, the same client goes out the default route...
        var plain = T.InHost(Clients.Named(program, proto, address), Via.Timeout);
        Assert.Equal(0, plain.Code);
        Assert.Equal(address.Contains(':') ? "isp1 fd01::2" : "isp1 10.1.0.2", plain.Out.Trim());
        // ...and under via run --dev up2 through up2, from up2's address.
        AssertThroughUp2(Via.Up2(T, Clients.Named(program, proto, address)), Up2Answer(address));
    }

    [RootFact]
    public void The_launcher_stage_for_kernels_without_clone3_routes_the_same()
    {
        // VIA_LAUNCHER=stage: via re-executes itself, the launcher moves into the cgroup, drops to the user, execs.
        const string who = "import os, socket; s = socket.create_connection(('198.51.100.1', 8080), timeout=5); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(os.getuid(), s.makefile().read().split('\\n')[-2])";
        var r = Via.RunWith(T, ["VIA_LAUNCHER=stage"], "run", "--dev", "up2", "--user", "nobody", "--", Clients.Python, "-c", who);
        output.WriteLine(r.Err);
        Assert.Equal(0, r.Code);
        Assert.Equal("65534 isp2 10.2.0.2", r.Out.Trim());
        var missing = Via.RunWith(T, ["VIA_LAUNCHER=stage"], "run", "--dev", "up2", "--", "sh", "-c", "exit 9");
        Assert.Equal(9, missing.Code);
    }

    [RootFact]
    public void The_gateway_of_a_multipath_default_route_is_found()
    {
        // up2's only IPv4 default route is one next hop of a multipath route in another table.
        Topology.Ip("-n", T.Host, "route", "del", "default", "via", "10.2.0.1", "dev", "up2", "table", "200");
        Topology.Ip("-n", T.Host, "route", "add", "default", "table", "201", "nexthop", "via", "10.1.0.1", "dev", "up1", "nexthop", "via", "10.2.0.1", "dev", "up2");
        try
        {
            AssertThroughUp2(Via.Up2(T, Clients.DotNet("tcp", Topology.Server4)), "isp2 10.2.0.2");
        }
        finally
        {
            Topology.Run("ip", ["-n", T.Host, "route", "del", "default", "table", "201"]);
            Topology.Ip("-n", T.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200");
        }
    }

    [RootFact]
    public void Gateway_and_source_can_be_given()
    {
        AssertThroughUp2(Via.Run(T, ["run", "--dev", "up2", "--gateway", "10.2.0.1", "--src", "10.2.0.2", "--", .. Clients.DotNet("tcp", Topology.Server4)]), "isp2 10.2.0.2");
    }

    [RootFact]
    public void Children_and_threads_are_routed_too()
    {
        string script = $"{string.Join(' ', Clients.DotNet("tcp", Topology.Server4))}; sh -c '{string.Join(' ', Clients.DotNet("udp", Topology.Server6))}'";
        var r = Via.Up2(T, "sh", "-c", script);
        Assert.Equal(0, r.Code);
        Assert.Equal(["isp2 10.2.0.2", "isp2 fd02::2"], r.Out.Trim().Split('\n'));

        const string threads = """
            import socket, threading
            out = []
            def ask():
                s = socket.create_connection(('198.51.100.1', 8080), timeout=5); s.sendall(b'GET / HTTP/1.0\r\n\r\n')
                out.append(s.makefile().read().split('\n')[-2])
            ts = [threading.Thread(target=ask) for _ in range(8)]
            [t.start() for t in ts]; [t.join() for t in ts]
            print(sorted(set(out)), len(out))
            """;
        var t = Via.Up2(T, Clients.Python, "-c", threads);
        Assert.Equal(0, t.Code);
        Assert.Equal("['isp2 10.2.0.2'] 8", t.Out.Trim());
    }

    [RootFact]
    public void Loopback_and_the_hosts_own_addresses_keep_working()
    {
        // A server in the host namespace itself, on loopback and on up1's address.
        using var p = Via.Start(T, ["__serve", "--name", "local", "--port", "9090"]);
        try
        {
            Assert.StartsWith("listening", p.StandardOutput.ReadLine());
            var r = Via.Up2(T, "sh", "-c", $"{ViaBinary.Path} __probe tcp 127.0.0.1 9090; {ViaBinary.Path} __probe tcp 10.1.0.2 9090; {ViaBinary.Path} __probe tcp ::1 9090");
            output.WriteLine(r.Out + r.Err);
            Assert.Equal(0, r.Code);
            Assert.Equal(["local 127.0.0.1", "local 10.1.0.2", "local ::1"], r.Out.Trim().Split('\n'));
        }
        finally
        {
            p.Kill(entireProcessTree: true);
        }
    }

    [RootFact]
    public void Other_programs_keep_their_route_while_a_routed_one_runs()
    {
        var before = T.ServerLog(2).Count;
        // The routed program asks once the test has asked without via, while the route is up.
        string flag = Path.Combine(Path.GetTempPath(), $"via-others-{Guid.NewGuid():N}");
        var routed = System.Threading.Tasks.Task.Run(() => Via.Up2(T, "sh", "-c", $"while [ ! -e {flag} ]; do sleep 0.05; done; {string.Join(' ', Clients.DotNet("tcp", Topology.Server4))}"));
        try
        {
            Via.WaitForRoute(T, "up2");
            var plain = T.InHost(Clients.DotNet("tcp", Topology.Server4));
            Assert.Equal("isp1 10.1.0.2", plain.Out.Trim());
        }
        finally
        {
            File.WriteAllText(flag, "");
        }
        var r = routed.Result;
        File.Delete(flag);
        Assert.Equal(0, r.Code);
        Assert.Equal("isp2 10.2.0.2", r.Out.Trim());
        Assert.Equal(before + 1, T.ServerLog(2).Count);
    }

    [RootFact]
    public void Strict_rp_filter_is_honoured_without_changing_it()
    {
        foreach (var key in new[] { "all", "up2" })
            Assert.Equal(0, T.InHost(["sysctl", "-qw", $"net.ipv4.conf.{key}.rp_filter=1"]).Code);
        try
        {
            AssertThroughUp2(Via.Up2(T, Clients.DotNet("tcp", Topology.Server4)), "isp2 10.2.0.2");
            AssertThroughUp2(Via.Up2(T, Clients.PythonClient("udp", Topology.Server4)), "isp2 10.2.0.2");
            Assert.Equal("1", T.InHost(["sysctl", "-n", "net.ipv4.conf.up2.rp_filter"]).Out.Trim());
            Assert.Equal("1", T.InHost(["sysctl", "-n", "net.ipv4.conf.all.rp_filter"]).Out.Trim());
        }
        finally
        {
            foreach (var key in new[] { "all", "up2" }) T.InHost(["sysctl", "-qw", $"net.ipv4.conf.{key}.rp_filter=0"]);
        }
    }

    [RootFact]
    public void A_program_running_as_an_unprivileged_user_is_routed()
    {
        const string who = "import os, socket; s = socket.create_connection(('198.51.100.1', 8080), timeout=5); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(os.getuid(), os.getgid(), s.makefile().read().split('\\n')[-2])";
        var byUser = Via.Run(T, "run", "--dev", "up2", "--user", "nobody", "--", Clients.Python, "-c", who);
        Assert.True(byUser.Code == 0, byUser.Err);
        Assert.Equal("65534 65534 isp2 10.2.0.2", byUser.Out.Trim());

        // Under sudo, the invoking user (SUDO_UID/SUDO_GID) is the default.
        var sudo = Via.RunWith(T, ["SUDO_UID=65534", "SUDO_GID=65534"], "run", "--dev", "up2", "--", Clients.Python, "-c", who);
        Assert.True(sudo.Code == 0, sudo.Err);
        Assert.Equal("65534 65534 isp2 10.2.0.2", sudo.Out.Trim());

        var root = Via.RunWith(T, ["SUDO_UID=65534", "SUDO_GID=65534"], "run", "--dev", "up2", "--user", "root", "--", Clients.Python, "-c", who);
        Assert.Equal("0 0 isp2 10.2.0.2", root.Out.Trim());
    }
}
