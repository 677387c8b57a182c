using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// via beside other routing software (issue 7): each test recreates a program's documented routing
/// layout (its rules with their priorities, marks and masks, its tables and routes, a stand-in
/// interface) inside this class's topology host namespace, without installing the program, and
/// checks that via's program leaves by up2 with no configuration, that the other program's traffic
/// takes the path it took before, and that afterwards nothing of via's is left and the foreign
/// rules are untouched. This class has its own state directory, cgroup subtree and tables (<see cref="ClassState"/>).
/// </summary>
public sealed class CoexistTests(TopologyFixture<CoexistTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<CoexistTests>>, IDisposable
{
    private Topology T => fixture.Topology;

    /// <summary>The tests' own files (not via's).</summary>
    private readonly string _scratch = Path.Combine(Path.GetTempPath(), $"via-coexist-{Guid.NewGuid():N}");

    public void Dispose()
    {
        // A route a failed test left: removed by via's own collector; its tables only (mask and priority chosen by via).
        if (fixture.State.Journals().Count > 0) Via("gc");
        fixture.State.Configure();
        if (Directory.Exists(_scratch)) Directory.Delete(_scratch, recursive: true);
    }

    /// <summary>bin/via ARGS in the host namespace with this class's state directory, subtree and tables.</summary>
    private (int Code, string Out, string Err) Via(params string[] args)
    {
        var r = Kernel.Via.Run(T, args);
        output.WriteLine($"via {string.Join(' ', args)} -> {r.Code}\n{r.Out}{r.Err}");
        return r;
    }

    private static string Server => Topology.Server4;

    /// <summary>What the kernel does with an unmarked (or marked) packet from the host: 'ip route get'.</summary>
    private string RouteGet(string destination, string? mark = null)
    {
        var r = Topology.Run("ip", ["-n", T.Host, "route", "get", destination, .. mark is null ? Array.Empty<string>() : ["mark", mark]]);
        Assert.True(r.Code == 0, r.Err);
        return r.Out.Trim();
    }

    /// <summary>
    /// Runs ip(8) steps of a layout; records the undo of each so the test removes them even when it
    /// fails (a step without one goes with its interface: addresses, and routes through it).
    /// </summary>
    private sealed class Layout(string host) : IDisposable
    {
        private readonly List<string[]> _undo = [];

        public void Do(string[] apply, string[]? undo)
        {
            Topology.Ip(["-n", host, .. apply]);
            if (undo is not null) _undo.Add(["-n", host, .. undo]);
        }

        public void Later(params string[] undo) => _undo.Add(undo);

        public void Dispose()
        {
            for (int i = _undo.Count - 1; i >= 0; i--) Topology.Run("ip", _undo[i]);
        }

        /// <summary>ip rule add ARGS pref P in both families; removed with 'ip rule del pref P ARGS', that rule only.</summary>
        public void Rule(uint pref, params string[] args)
        {
            foreach (var family in new[] { "-4", "-6" })
                Do([family, "rule", "add", "pref", pref.ToString(System.Globalization.CultureInfo.InvariantCulture), .. args],
                   [family, "rule", "del", "pref", pref.ToString(System.Globalization.CultureInfo.InvariantCulture), .. args]);
        }

        /// <summary>A stand-in interface (a veth pair whose both ends stay in this namespace), up.</summary>
        public void Interface(string name, string address)
        {
            Do(["link", "add", name, "type", "veth", "peer", "name", name + "p"], ["link", "del", name]);
            Do(["link", "set", name, "up"], null);
            Do(["link", "set", name + "p", "up"], null);
            Do(["addr", "add", address, "dev", name], null);
        }
    }

    /// <summary>via run --dev up2 -- sh -c 'curl; ip rule; ip route get SERVER': the program's answer, via's rules and the plain path while the route is up.</summary>
    private (string Answer, string Rules, string PlainPath) RunThroughUp2()
    {
        string script = $"{string.Join(' ', Clients.Curl(Server))}; echo; ip rule; echo ==; ip route get {Server}";
        var r = Via("run", "--dev", "up2", "--", "sh", "-c", script);
        Assert.True(r.Code == 0, r.Err);
        var parts = r.Out.Split("==", 2);
        var lines = parts[0].Split('\n', 2);
        return (lines[0].Trim(), lines.Length > 1 ? lines[1] : "", parts.Length > 1 ? parts[1].Trim() : "");
    }

    /// <summary>
    /// tailscale util/linuxfw's layout: tailscale0 (ts0 here) with a 100.x address, table 52 with
    /// the tailnet, a subnet route and (exit node) a default route, and its four rules.
    /// </summary>
    private static void TailscaleExitNode(Layout layout)
    {
        layout.Interface("ts0", "100.64.0.5/32");
        layout.Do(["-6", "addr", "add", "fd7a:115c:a1e0::5/128", "dev", "ts0", "nodad"], null);
        layout.Do(["route", "add", "100.64.0.0/10", "dev", "ts0", "table", "52"], null);
        layout.Do(["route", "add", "192.168.77.0/24", "dev", "ts0", "table", "52"], null);
        layout.Do(["route", "add", "default", "dev", "ts0", "table", "52"], null);
        layout.Do(["-6", "route", "add", "fd7a:115c:a1e0::/48", "dev", "ts0", "table", "52"], null);
        layout.Do(["-6", "route", "add", "default", "dev", "ts0", "table", "52"], null);
        layout.Rule(5210, "fwmark", "0x80000/0xff0000", "lookup", "main");
        layout.Rule(5230, "fwmark", "0x80000/0xff0000", "lookup", "default");
        layout.Rule(5250, "fwmark", "0x80000/0xff0000", "unreachable");
        layout.Rule(5270, "lookup", "52");
    }

    [RootFact]
    public void Tailscale_with_an_exit_node_via_goes_before_lookup_52_and_Tailscale_keeps_its_paths()
    {
        using var layout = new Layout(T.Host);
        TailscaleExitNode(layout);

        var before = HostSnapshot.Take(T);
        string plain = RouteGet(Server), own = RouteGet(Server, "0x80000"), subnet = RouteGet("192.168.77.9");
        Assert.Contains("dev ts0", plain);  // the exit node takes everything
        Assert.Contains("dev up1", own);    // tailscaled's own packets bypass it

        var (answer, rules, plainDuring) = RunThroughUp2();

        Assert.Equal("isp2 10.2.0.2", answer);
        Assert.Contains("5269:", rules);     // just before 'lookup 52'
        var v6 = Via(["run", "--dev", "up2", "--", .. Clients.Curl(Topology.Server6)]);
        Assert.Equal("isp2 fd02::2", v6.Out.Trim()); // the exit node's IPv6 default is passed by too
        Assert.Equal(plain, plainDuring);
        Assert.Equal(own, RouteGet(Server, "0x80000"));
        Assert.Equal(subnet, RouteGet("192.168.77.9"));
        HostSnapshot.AssertUnchanged(before, T);
        Assert.Equal(plain, RouteGet(Server));
    }

    [RootFact]
    public void Tailscale_with_an_exit_node_and_via_rules_after_5270_the_program_fails_closed()
    {
        // What happened with the fixed priority 12000 (and a mask outside Tailscale's bits): the
        // program's packets meet 'lookup 52' first and are routed into ts0, where the egress guard
        // drops them. A configured priority still wins; doctor says why it is wrong.
        using var layout = new Layout(T.Host);
        TailscaleExitNode(layout);
        fixture.State.Configure("mark-mask = 0x0000ff00\npriority = 12000\n");
        try
        {
            var before = HostSnapshot.Take(T);
            var r = Via(["run", "--dev", "up2", "--", .. Clients.Curl(Server)]);
            Assert.NotEqual(0, r.Code);
            Assert.DoesNotContain("isp", r.Out);
            Assert.Contains("pref 5270 lookup 52, Tailscale's comes before via's configured priority 12000", r.Err);
            var doctor = Via("doctor");
            Assert.Matches(@"warn +priority +12000: configured in .*pref 5270 lookup 52, Tailscale's comes before", doctor.Out);
            HostSnapshot.AssertUnchanged(before, T);
        }
        finally
        {
            fixture.State.Configure();
        }
    }

    [RootFact]
    public void WireGuard_full_tunnel_stays_the_default_and_via_bypasses_it()
    {
        using var layout = new Layout(T.Host);
        // wg-quick(8) with AllowedIPs = 0.0.0.0/0, ::/0: table 51820 with a default route into wg0,
        // 'not fwmark 51820 lookup 51820' and 'lookup main suppress_prefixlength 0'; the tunnel's
        // own socket carries fwmark 51820 (0xca6c).
        layout.Interface("wg0", "10.99.0.2/32");
        layout.Do(["route", "add", "default", "dev", "wg0", "table", "51820"], null);
        layout.Do(["-6", "route", "add", "default", "dev", "wg0", "table", "51820"], null);
        layout.Rule(32765, "not", "fwmark", "0xca6c", "lookup", "51820");
        layout.Rule(32764, "lookup", "main", "suppress_prefixlength", "0");

        var before = HostSnapshot.Take(T);
        string plain = RouteGet(Server), tunnel = RouteGet(Server, "0xca6c");
        Assert.Contains("dev wg0", plain);
        Assert.Contains("dev up1", tunnel);

        var (answer, _, plainDuring) = RunThroughUp2();

        Assert.Equal("isp2 10.2.0.2", answer);
        Assert.Equal(plain, plainDuring);
        Assert.Equal(tunnel, RouteGet(Server, "0xca6c"));
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void Kube_proxy_and_Calico_marks_via_picks_other_bits()
    {
        using var layout = new Layout(T.Host);
        // kube-proxy's masquerade bit 0x4000 and kubelet's drop bit 0x8000, Calico's mask 0xffff0000:
        // rules that would send packets with those bits to isp1.
        layout.Do(["route", "add", "default", "via", "10.1.0.1", "dev", "up1", "table", "300"], ["route", "del", "default", "table", "300"]);
        layout.Rule(100, "fwmark", "0x4000/0x4000", "lookup", "300");
        layout.Rule(101, "fwmark", "0x8000/0x8000", "lookup", "300");
        layout.Rule(102, "fwmark", "0x10000/0xffff0000", "lookup", "300");

        var before = HostSnapshot.Take(T);
        var plan = Via("run", "--dev", "up2", "--dry-run", "--json", "--", "true");
        Assert.Equal(0, plan.Code);
        using (var doc = System.Text.Json.JsonDocument.Parse(plan.Out))
        {
            uint mask = doc.RootElement.GetProperty("markMask").GetUInt32();
            Assert.Equal(0u, mask & 0xffffc000);
        }
        var (answer, _, _) = RunThroughUp2();
        Assert.Equal("isp2 10.2.0.2", answer);
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void Marks_another_program_sets_in_nftables_are_avoided()
    {
        // A firewall that keeps its own state in bits 0xf0 of the mark, as a program would with
        // 'meta mark set meta mark and 0xffffff0f or 0x10': read through libnftables, no rule shows it.
        var nft = T.InHost(["nft", "add table ip viatest-marks; add chain ip viatest-marks out { type route hook output priority mangle; }; add rule ip viatest-marks out meta mark set meta mark and 0xffffff0f or 0x10"]);
        Assert.True(nft.Code == 0, "nft: " + nft.Err + " (install nftables: apt-get install nftables)");
        try
        {
            var before = HostSnapshot.Take(T);
            var plan = Via("run", "--dev", "up2", "--dry-run", "--json", "--", "true");
            Assert.Equal(0, plan.Code);
            using (var doc = System.Text.Json.JsonDocument.Parse(plan.Out))
                Assert.Equal(0u, doc.RootElement.GetProperty("markMask").GetUInt32() & 0xf0);
            var doctor = Via("doctor");
            Assert.Contains("nftables table ip viatest-marks chain out", doctor.Out);
            // The firewall's rule runs on via's packets too, and leaves via's bits alone: they still leave by up2.
            var (answer, _, _) = RunThroughUp2();
            Assert.Equal("isp2 10.2.0.2", answer);
            HostSnapshot.AssertUnchanged(before, T);
        }
        finally
        {
            T.InHost(["nft", "delete table ip viatest-marks"]);
        }
    }

    [RootFact]
    public void A_new_route_keeps_the_mask_of_the_routes_already_up()
    {
        // A rule with the exact mark 0x1 appears while a route is up: alone, via would now choose
        // 0x000000fe (outside that bit); beside the running route it keeps 0x000000ff, so the two
        // routes' rules never match each other's packets.
        string started = Path.Combine(_scratch, "started"), stop = Path.Combine(_scratch, "stop-a");
        Directory.CreateDirectory(_scratch);
        using var first = Kernel.Via.Start(T, ["run", "--dev", "up2", "--", "sh", "-c", $"touch {started}; while [ ! -e {stop} ]; do sleep 0.05; done"]);
        bool added = false;
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (!File.Exists(started) && !first.HasExited && DateTime.UtcNow < deadline) first.WaitForExit(50);
            Assert.True(File.Exists(started), "the first route did not come up: " + (first.HasExited ? first.StandardError.ReadToEnd() : "timeout"));
            Topology.Ip("-n", T.Host, "rule", "add", "pref", "100", "fwmark", "0x1", "lookup", "100");
            added = true;

            var second = Via("run", "--dev", "up1", "--dry-run", "--", "true");
            Assert.Equal(0, second.Code);
            Assert.Contains("# mark mask 0x000000ff (the mask of via's existing routes", second.Out);
            Assert.Contains("fwmark 0x2/0xff", second.Out); // the next value under the same mask

            File.WriteAllText(stop, "");
            Assert.True(first.WaitForExit(30000), "via did not exit");
            var alone = Via("run", "--dev", "up1", "--dry-run", "--", "true");
            Assert.Contains("# mark mask 0x000000fe", alone.Out);
        }
        finally
        {
            File.WriteAllText(stop, "");
            first.WaitForExit(30000);
            if (added) Topology.Run("ip", ["-n", T.Host, "rule", "del", "pref", "100", "fwmark", "0x1", "lookup", "100"]);
        }
    }

    [RootFact]
    public void Docker_like_containers_keep_reaching_the_outside_through_their_NAT()
    {
        string container = T.Prefix + "-ctr";
        using var layout = new Layout(T.Host);
        // docker0 with a masqueraded 172.17.0.0/16, one container on it (a namespace of this test).
        layout.Do(["link", "add", "docker0", "type", "bridge"], ["link", "del", "docker0"]);
        layout.Do(["addr", "add", "172.17.0.1/16", "dev", "docker0"], null);
        layout.Do(["link", "set", "docker0", "up"], null);
        Topology.Ip("netns", "add", container);
        layout.Later("netns", "del", container);
        layout.Do(["link", "add", "veth-ctr", "type", "veth", "peer", "name", "eth0", "netns", container], ["link", "del", "veth-ctr"]);
        layout.Do(["link", "set", "veth-ctr", "master", "docker0", "up"], null);
        Topology.Ip("-n", container, "link", "set", "lo", "up");
        Topology.Ip("-n", container, "addr", "add", "172.17.0.2/16", "dev", "eth0");
        Topology.Ip("-n", container, "link", "set", "eth0", "up");
        Topology.Ip("-n", container, "route", "add", "default", "via", "172.17.0.1");
        Assert.Equal(0, T.InHost(["sysctl", "-qw", "net.ipv4.ip_forward=1"]).Code);
        var nft = T.InHost(["nft", "add table ip viatest-nat; add chain ip viatest-nat post { type nat hook postrouting priority srcnat; }; add rule ip viatest-nat post ip saddr 172.17.0.0/16 oifname != \"docker0\" masquerade"]);
        Assert.True(nft.Code == 0, "nft: " + nft.Err + " (install nftables: apt-get install nftables)");
        try
        {
            var before = HostSnapshot.Take(T);
            string[] fromContainer = ["ip", "netns", "exec", container, .. Clients.Curl(Server)];
            Assert.Equal("isp1 10.1.0.2", Topology.Run(fromContainer[0], fromContainer[1..]).Out.Trim());

            // A via route that stays up while the container talks: the program writes its answer, then waits for a file.
            string answer = Path.Combine(_scratch, "answer"), stop = Path.Combine(_scratch, "stop");
            Directory.CreateDirectory(_scratch);
            using var routed = Kernel.Via.Start(T, ["run", "--dev", "up2", "--", "sh", "-c",
                $"{string.Join(' ', Clients.Curl(Server))} > {answer}.tmp; mv {answer}.tmp {answer}; while [ ! -e {stop} ]; do sleep 0.05; done"]);
            try
            {
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
                while (!File.Exists(answer) && !routed.HasExited && DateTime.UtcNow < deadline) routed.WaitForExit(50);
                Assert.True(File.Exists(answer), "the routed program did not answer: " + (routed.HasExited ? routed.StandardError.ReadToEnd() : "timeout"));
                Assert.Equal("isp2 10.2.0.2", File.ReadAllText(answer).Trim());
                Assert.Equal("isp1 10.1.0.2", Topology.Run(fromContainer[0], fromContainer[1..]).Out.Trim());
            }
            finally
            {
                File.WriteAllText(stop, "");
                Assert.True(routed.WaitForExit(30000), "via did not exit");
            }
            Assert.Equal(0, routed.ExitCode);
            HostSnapshot.AssertUnchanged(before, T);
            Assert.Equal("isp1 10.1.0.2", Topology.Run(fromContainer[0], fromContainer[1..]).Out.Trim());
        }
        finally
        {
            T.InHost(["nft", "delete table ip viatest-nat"]);
            T.InHost(["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
        }
    }
}
