using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// The netns mechanism's direct attachment, <c>--ip</c> (firejail's): the program in a namespace of
/// its own with a macvlan on up2 and the given addresses, no veth, no NAT, no forwarding. The
/// topology's isp2 end of up2 is 10.2.0.1/24 and fd02::1/64, and its server answers with the
/// source it saw: the macvlan's address, not up2's. Own class state (tables 25400-25449).
/// </summary>
public sealed class NetnsMacvlanTests(TopologyFixture<NetnsMacvlanTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<NetnsMacvlanTests>>
{
    private const string Ip4 = "10.2.0.77", Ip6 = "fd02::77";

    private static readonly string[] Attach = ["--ip", Ip4 + "/24", "--ip", Ip6 + "/64"];

    private Topology T => fixture.Topology;

    private (int Code, string Out, string Err) Via(string? fault, params string[] args)
    {
        var r = Kernel.Via.RunWith(T, fault is null ? [] : [$"VIA_FAULT={fault}"], args);
        output.WriteLine($"via {string.Join(' ', args)}{(fault is null ? "" : $" (fault {fault})")}: exit {r.Code}\n{r.Out}{r.Err}");
        return r;
    }

    /// <summary>via run --method netns --dev up2 --ip 10.2.0.77/24 --ip fd02::77/64 [OPTIONS] -- COMMAND.</summary>
    private (int Code, string Out, string Err) Attached(string[] options, params string[] command) =>
        Via(null, ["run", "--method", "netns", "--dev", "up2", .. Attach, .. options, "--", .. command]);

    private const string Knock = """
        import socket, sys
        a = sys.argv[1]
        s = socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET); s.settimeout(1)
        try: s.connect((a, 9))
        except ConnectionRefusedError: print('yes')
        except OSError: print('no')
        """;

    /// <summary>Whether <paramref name="address"/> answers isp2 (a TCP reset from a closed port: the macvlan's kernel
    /// answers ARP/ND and the SYN while it exists; once it is gone, nothing does).</summary>
    private bool Answers(string address) =>
        Topology.Run("ip", ["netns", "exec", T.Isp(2), Clients.Python, "-c", Knock, address]).Out.Trim() == "yes";

    /// <summary>What of the route could be left: via's rules and routes, the netns mechanism's host objects and files, the
    /// class's journals, a macvlan on the host's side, and the addresses still answering on up2's network.</summary>
    private string Objects() =>
        T.InHost(["sh", "-c", "{ ip rule; ip -6 rule; } | grep -w 'proto 86'; ip route show table all proto 86; ip -6 route show table all proto 86; ip -o link show type macvlan"]).Out
        + NetnsTests.Leftovers(T, fixture.State.StateDirectory) + string.Join(',', fixture.State.Journals())
        + (Answers(Ip4) ? Ip4 + " answers" : "") + (Answers(Ip6) ? Ip6 + " answers" : "");

    [RootTheory]
    [MemberData(nameof(Contract.MechanismContract.Programs), MemberType = typeof(Contract.MechanismContract))]
    public void The_server_sees_isp2_and_the_given_address(string program, string proto, string address)
    {
        string[] client = Clients.Named(program, proto, address); // busybox is static: nothing to hook, the namespace routes it
        int isp1 = T.ServerLog(1).Count;
        var r = Attached([], client);
        Assert.Equal(0, r.Code);
        Assert.Equal($"isp2 {(address.Contains(':') ? Ip6 : Ip4)}", r.Out.Trim());
        Assert.Equal(isp1, T.ServerLog(1).Count);
        Kernel.Via.WaitUntil(() => Objects() == "", "nothing of the route to be left: " + Objects());
    }

    [RootFact]
    public void An_unprivileged_program_gets_the_address_too()
    {
        const string who = "import os, socket; s = socket.create_connection(('2001:db8:100::1', 8080), timeout=5); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(os.getuid(), s.makefile().read().split('\\n')[-2])";
        var r = Attached(["--user", "nobody"], Clients.Python, "-c", who);
        Assert.Equal(0, r.Code);
        Assert.Equal($"65534 isp2 {Ip6}", r.Out.Trim());
        Kernel.Via.WaitUntil(() => Objects() == "", "nothing of the route to be left: " + Objects());
    }

    /// <summary>While the program runs: inside, via0 is a macvlan with the given addresses, the on-link prefixes and
    /// defaults through up2's gateways; on the host, no veth, no nft table, no forwarding; and only the namespace file.</summary>
    [RootFact]
    public void The_namespace_has_a_macvlan_with_the_addresses_and_the_host_side_has_nothing()
    {
        string forwarding = T.InHost(["sysctl", "-n", "net.ipv4.conf.up2.forwarding"]).Out;
        const string show = "ip -d -o link show via0 | grep -o 'macvlan mode bridge'; ip -o addr show dev via0 scope global | awk '{print $4}'; ip route; ip -6 route show default; "
            + "ip -o link | grep -c '^[0-9]*: via0'; read line";
        using var via = Kernel.Via.Start(T, ["run", "--method", "netns", "--dev", "up2", .. Attach, "--", "sh", "-c", show], input: true);
        try
        {
            var lines = new List<string>();
            for (int i = 0; i < 7; i++) lines.Add(via.StandardOutput.ReadLine() ?? "");
            output.WriteLine(string.Join('\n', lines));
            Assert.Equal("macvlan mode bridge", lines[0]);
            Assert.Equal($"{Ip4}/24", lines[1]);
            Assert.Equal($"{Ip6}/64", lines[2]);
            Assert.StartsWith("default via 10.2.0.1 dev via0", lines[3]);
            Assert.StartsWith("10.2.0.0/24 dev via0 proto kernel scope link src 10.2.0.77", lines[4]);
            Assert.StartsWith("default via fd02::1 dev via0", lines[5]);
            Assert.Equal("1", lines[6]);
            // The host's side: the route's rules and table (the engine's, as for any route), nothing else.
            Assert.Equal("", T.InHost(["sh", "-c", "ip -o link show | grep -o 'via-t[0-9p]*'; ip -o link show type macvlan; nft list tables | grep via_"]).Out);
            Assert.Equal(forwarding, T.InHost(["sysctl", "-n", "net.ipv4.conf.up2.forwarding"]).Out);
            Assert.True(Answers(Ip4) && Answers(Ip6), "the macvlan answers isp2");
        }
        finally
        {
            via.StandardInput.WriteLine();
            via.StandardInput.Close();
            if (!via.WaitForExit(30000)) via.Kill(entireProcessTree: true);
            via.WaitForExit();
        }
        Assert.Equal(0, via.ExitCode);
        Kernel.Via.WaitUntil(() => Objects() == "", "nothing of the route to be left: " + Objects());
    }

    /// <summary>Killed after the journal, after each change, at the exit and after each undo: 'via gc' leaves the host as it
    /// was, the namespace file gone and the address free on up2's network.</summary>
    [RootFact]
    public void Killed_at_any_point_it_leaks_nothing_and_gc_restores_the_host()
    {
        var json = Via(null, ["run", "--method", "netns", "--dev", "up2", .. Attach, "--dry-run", "--json", "--", "true"]);
        Assert.Equal(0, json.Code);
        using var doc = System.Text.Json.JsonDocument.Parse(json.Out);
        var steps = doc.RootElement.GetProperty("steps").EnumerateArray().Select(s => s.ToString()).ToList();
        Assert.Contains(steps, s => s.Contains("type macvlan mode bridge", StringComparison.Ordinal));
        Assert.DoesNotContain(steps, s => s.Contains("veth", StringComparison.Ordinal) || s.Contains("masquerade", StringComparison.Ordinal) || s.Contains("forwarding", StringComparison.Ordinal));
        var stages = new List<string> { "journal" };
        for (int i = 1; i <= steps.Count; i++) stages.Add($"apply:{i}");
        stages.Add("exit");
        for (int i = 1; i <= steps.Count; i++) stages.Add($"undo:{i}");
        foreach (var stage in stages)
        {
            var before = HostSnapshot.Take(T);
            int isp1 = T.ServerLog(1).Count;
            var r = Via(stage, ["run", "--method", "netns", "--dev", "up2", .. Attach, "--", .. Clients.DotNet("tcp", Topology.Server4)]);
            Assert.True(r.Code == 128 + 9, $"{stage}: via should have died of SIGKILL there, exited {r.Code}");
            bool launched = stage is "exit" || stage.StartsWith("undo", StringComparison.Ordinal);
            Assert.True((launched ? $"isp2 {Ip4}" : "") == r.Out.Trim(), $"{stage}: program said '{r.Out.Trim()}'");
            Assert.True(isp1 == T.ServerLog(1).Count, $"{stage}: a connection reached isp1");
            var gc = Via(null, "gc");
            Assert.True(gc.Code == 0, $"{stage}: via gc exited {gc.Code}: {gc.Err}");
            HostSnapshot.AssertUnchanged(before, T);
            Kernel.Via.WaitUntil(() => Objects() == "", $"{stage}: nothing of the route to be left: {Objects()}");
        }
    }

    public static TheoryData<string[], string> Refusals => new()
    {
        { ["--method", "cgroup", "--ip", "10.2.0.77/24"], "--ip needs --method netns" },
        { ["--method", "seccomp", "--ip", "10.2.0.77/24"], "--ip needs --method netns" },
        { ["--ip", "10.2.0.777/24"], "'10.2.0.777/24' is not an IPv4 or IPv6 address" },
        { ["--ip", "10.2.0"], "'10.2.0' is not an IPv4 or IPv6 address" },
        { ["--ip", "10.2.0.77/33"], "the prefix length must be a number from 1 to 32" },
        { ["--ip", "fd02::77/129"], "the prefix length must be a number from 1 to 128" },
        { ["--ip", "10.2.0.77/"], "the prefix length must be" },
        { ["--ip", "10.2.0.0/24"], "is the network address of its /24" },
        { ["--ip", "10.2.0.77/24,10.2.0.78/24"], "one IPv4 and one IPv6 address at most" },
        { ["--ip", "fe80::77/64"], "link-local" },
        { ["--ip", "10.2.0.2/24"], "10.2.0.2 is already an address of this host (up2)" },
        { ["--ip", "fd02::2/64"], "fd02::2 is already an address of this host (up2)" },
        { ["--ip", "10.1.0.2/24"], "10.1.0.2 is already an address of this host (up1)" },
        { ["--ip", "10.9.9.9/24"], "up2's IPv4 gateway 10.2.0.1 is not in its prefix" },
        { ["--ip", "10.9.9.9"], "up2 has no on-link prefix that holds 10.9.9.9" },
    };

    /// <summary>Each refusal: exit 125, one line naming the problem, nothing run, nothing changed (both parsers: the fast one leaves bad values to System.CommandLine).</summary>
    [RootTheory]
    [MemberData(nameof(Refusals))]
    public void A_bad_request_is_refused_in_one_line_and_changes_nothing(string[] options, string message)
    {
        string[] method = options.Contains("--method") ? [] : ["--method", "netns"];
        AssertRefused(["run", .. method, "--dev", "up2", .. options, "--", "sh", "-c", "echo ran"], message);
    }

    [RootFact]
    public void A_device_that_is_not_Ethernet_is_refused_and_nothing_changes()
    {
        // A tun device (ARPHRD_NONE, as WireGuard's) in the topology's host namespace, up, with an address and a gateway.
        Topology.Ip("-n", T.Host, "tuntap", "add", "dev", "vtun9", "mode", "tun");
        try
        {
            Topology.Ip("-n", T.Host, "addr", "add", "10.9.0.2/24", "dev", "vtun9");
            Topology.Ip("-n", T.Host, "link", "set", "vtun9", "up");
            Topology.Run("ip", ["-n", T.Host, "route", "add", "default", "via", "10.9.0.1", "dev", "vtun9", "table", "201", "onlink"]);
            AssertRefused(["run", "--method", "netns", "--dev", "vtun9", "--ip", "10.9.0.77/24", "--", "sh", "-c", "echo ran"], "--ip needs an Ethernet interface, and vtun9 is not");
        }
        finally
        {
            Topology.Run("ip", ["-n", T.Host, "link", "del", "vtun9"]);
        }
    }

    /// <summary>Where IFACE has no gateway of a family, the namespace has only the on-link prefix of that family, and --verbose says so.</summary>
    [RootFact]
    public void Without_a_gateway_only_the_on_link_prefix_and_verbose_says_so()
    {
        Topology.Ip("-n", T.Host, "-6", "route", "del", "default", "via", "fd02::1", "dev", "up2", "table", "200");
        try
        {
            var r = Via(null, ["run", "--method", "netns", "--dev", "up2", "--ip", Ip6 + "/64", "--verbose", "--", "sh", "-c",
                "ip -6 route show default | wc -l; " + Kernel.Via.ProbeLine("tcp", "fd02::1") + "; " + Kernel.Via.ProbeLine("tcp", Topology.Server6) + "; exit 0"]);
            Assert.Equal(0, r.Code);
            // No default route; isp2's server answers on its on-link fd02::1 too, and is unreachable at its address beyond.
            Assert.Equal($"0\nisp2 {Ip6}\nerror NetworkUnreachable", r.Out.Trim());
            Assert.Contains($"--ip {Ip6}/64: up2 has no IPv6 gateway: the program reaches only {Ip6}'s on-link prefix", r.Err);
        }
        finally
        {
            Topology.Run("ip", ["-n", T.Host, "-6", "route", "replace", "default", "via", "fd02::1", "dev", "up2", "table", "200"]);
        }
        Kernel.Via.WaitUntil(() => Objects() == "", "nothing of the route to be left: " + Objects());
    }

    /// <summary>Two routes cannot have one address: the second (another table, so another route) is refused while the first runs.</summary>
    [RootFact]
    public void An_address_another_route_has_is_refused()
    {
        using var first = Kernel.Via.Start(T, ["run", "--method", "netns", "--dev", "up2", "--ip", Ip4 + "/24", "--", "sh", "-c", "echo up; read line"], input: true);
        try
        {
            Assert.Equal("up", first.StandardOutput.ReadLine());
            AssertRefused(["run", "--method", "netns", "--dev", "up2", "--table", "25420", "--ip", Ip4, "--", "sh", "-c", "echo ran"], $"{Ip4} is already the address of via route t");
        }
        finally
        {
            first.StandardInput.WriteLine();
            first.StandardInput.Close();
            if (!first.WaitForExit(30000)) first.Kill(entireProcessTree: true);
            first.WaitForExit();
        }
        Kernel.Via.WaitUntil(() => Objects() == "", "nothing of the route to be left: " + Objects());
    }

    private void AssertRefused(string[] args, string message)
    {
        var before = HostSnapshot.Take(T);
        string objects = Objects();
        var r = Via(null, args);
        Assert.Equal(125, r.Code);
        Assert.Equal("", r.Out);
        Assert.Contains(message, r.Err);
        Assert.Single(r.Err.Trim().Split('\n'));
        HostSnapshot.AssertUnchanged(before, T);
        Assert.Equal(objects, Objects());
    }
}
