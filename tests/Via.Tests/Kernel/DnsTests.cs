using System.Diagnostics;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// The test topology with a host resolver that would leak: 'ip netns exec HOST' bind-mounts the
/// files of /etc/netns/HOST/ over /etc, so the host namespace's /etc/resolv.conf names a local stub
/// (127.0.0.53, a recording DNS server inside the host namespace, as systemd-resolved's would be)
/// and its nsswitch.conf hands lookups to nss-resolve first. Nothing outside the namespaces and
/// /etc/netns/HOST/ (removed afterwards, even on failure) is touched. via keeps its state in the
/// class's own state directory (<see cref="ClassState"/>), and no other code writes its dns/
/// directory, so "no file left behind" can be asserted there.
/// </summary>
public sealed class DnsFixture : IDisposable
{
    public const string HostResolvConf = "nameserver 127.0.0.53\nsearch via.test\noptions edns0\n";
    public const string HostNsSwitch = "passwd:         files\ngroup:          files\nhosts:          files resolve [!UNAVAIL=return] dns\nnetworks:       files\n";

    private readonly TopologyFixture<DnsTests> _topology = new();
    private bool _madeEtcNetns;

    public Topology Topology => _topology.Topology;

    public ClassState State => _topology.State;
    public string EtcNetns { get; }
    /// <summary>Scratch files of the tests (not via's).</summary>
    public string TempDirectory { get; } = Path.Combine(Path.GetTempPath(), $"via-dns-test-{Environment.ProcessId}");

    public DnsFixture()
    {
        try
        {
            EtcNetns = Path.Combine("/etc/netns", Topology.Host);
            _madeEtcNetns = !Directory.Exists("/etc/netns");
            Directory.CreateDirectory(EtcNetns);
            File.WriteAllText(Path.Combine(EtcNetns, "resolv.conf"), HostResolvConf);
            File.WriteAllText(Path.Combine(EtcNetns, "nsswitch.conf"), HostNsSwitch);
            Directory.CreateDirectory(TempDirectory);
            Topology.Serve(Topology.Host, ViaBinary.Path, "stub", ["--port", "0", "--dns", "127.0.0.53"]);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        _topology.Dispose();
        if (EtcNetns is not null && Directory.Exists(EtcNetns)) Directory.Delete(EtcNetns, recursive: true);
        if (_madeEtcNetns && Directory.Exists("/etc/netns") && !Directory.EnumerateFileSystemEntries("/etc/netns").Any()) Directory.Delete("/etc/netns");
        if (Directory.Exists(TempDirectory)) Directory.Delete(TempDirectory, recursive: true);
    }
}

/// <summary>
/// Names resolve through the route (DESIGN.md point 7): with --dns, the program's queries reach
/// the DNS server behind up2 from up2's address, for dynamic (glibc) and static (busybox) clients,
/// through both launch paths; the host's stub is never asked; the host's files stay as they were.
/// </summary>
public sealed class DnsTests(DnsFixture fixture, ITestOutputHelper output) : IClassFixture<DnsFixture>, IDisposable
{
    private Topology T => fixture.Topology;

    private readonly byte[] _resolvConf = File.ReadAllBytes("/etc/resolv.conf");
    private readonly byte[] _nsSwitch = File.ReadAllBytes("/etc/nsswitch.conf");

    /// <summary>After every test: the host's files byte for byte, and none of via's resolver files left.</summary>
    public void Dispose()
    {
        Assert.Equal(_resolvConf, File.ReadAllBytes("/etc/resolv.conf"));
        Assert.Equal(_nsSwitch, File.ReadAllBytes("/etc/nsswitch.conf"));
        Assert.Equal(DnsFixture.HostResolvConf, File.ReadAllText(Path.Combine(fixture.EtcNetns, "resolv.conf")));
        Assert.Equal(DnsFixture.HostNsSwitch, File.ReadAllText(Path.Combine(fixture.EtcNetns, "nsswitch.conf")));
        Assert.False(Directory.Exists(ResolverFiles), "via left its resolver files in " + ResolverFiles);
    }

    /// <summary>Where via writes a program's resolver files: dns/ in its state directory (PrivateResolverFiles.Root).</summary>
    private string ResolverFiles => Path.Combine(fixture.State.StateDirectory, "dns");

    private (int Code, string Out, string Err) Via(IEnumerable<string> args, bool stage = false)
    {
        var r = Kernel.Via.RunWith(T, stage ? ["VIA_LAUNCHER=stage"] : [], [.. args]);
        output.WriteLine($"via {string.Join(' ', args)}{(stage ? " (launcher stage)" : "")}\n-> {r.Code}\nstdout: {r.Out}\nstderr: {r.Err}");
        return r;
    }

    private static string[] Lookup(string client) => client switch
    {
        "getent" => ["getent", "ahosts", WhoamiName],                       // glibc getaddrinfo, dynamically linked
        "python" => [Clients.Python, "-c", $"import socket; print(socket.getaddrinfo('{WhoamiName}', 80)[0][4][0])"],
        "nslookup" => ["/bin/busybox", "nslookup", WhoamiName],           // static; reads /etc/resolv.conf itself
        "wget" => ["/bin/busybox", "wget", "-q", "-O", "-", $"http://{WhoamiName}:{Kernel.Via.Port}/"], // static glibc resolver, then a connection
        _ => throw new ArgumentException(client),
    };

    private const string WhoamiName = global::Via.Cli.Internal.WhoamiServer.TestName;

    private int DnsQueries(string server) => T.ServerLog(server).Count(l => l.StartsWith("dns ", StringComparison.Ordinal));

    private List<string> DnsLog(string server) => T.ServerLog(server).Where(l => l.StartsWith("dns ", StringComparison.Ordinal)).ToList();

    /// <summary>Waits (polling) until the server has logged more than <paramref name="count"/> queries: its log is read asynchronously.</summary>
    private void WaitForQueries(string server, int count)
    {
        var until = DateTime.UtcNow.AddSeconds(10);
        while (DnsQueries(server) <= count && DateTime.UtcNow < until) Thread.Sleep(20); // a poll; the caller asserts what came
    }

    [RootTheory]
    [InlineData("getent")]
    [InlineData("python")]
    public void Without_via_a_lookup_goes_to_the_hosts_stub(string client)
    {
        // The baseline that makes the other tests able to fail: the host namespace resolves through the stub.
        int stub = DnsQueries("stub"), isp2 = DnsQueries("isp2");
        var r = T.InHost(Lookup(client), Kernel.Via.Timeout);
        output.WriteLine($"{r.Code} {r.Out} {r.Err}");
        Assert.Equal(0, r.Code);
        WaitForQueries("stub", stub);
        Assert.True(DnsQueries("stub") > stub, "the plain lookup did not reach the stub");
        Assert.Equal(isp2, DnsQueries("isp2"));
    }

    public static TheoryData<string, string, bool> Lookups => new()
    {
        { "getent", Topology.Server4, false },
        { "python", Topology.Server4, false },
        { "nslookup", Topology.Server4, false },
        { "wget", Topology.Server4, false },
        { "getent", Topology.Server6, false },
        { "nslookup", Topology.Server6, false },
        { "getent", Topology.Server4, true },
        { "nslookup", Topology.Server6, true },
        { "wget", Topology.Server4, true },
    };

    [RootTheory]
    [MemberData(nameof(Lookups))]
    public void With_dns_the_queries_leave_through_the_route(string client, string server, bool stage)
    {
        int stub = DnsQueries("stub"), isp1 = DnsQueries("isp1"), isp2 = DnsQueries("isp2");
        var r = Via(["run", "--dev", "up2", "--dns", server, "--", .. Lookup(client)], stage);
        Assert.Equal(0, r.Code);
        Assert.Equal("", r.Err);
        Assert.Contains(client == "wget" ? "isp2 10.2.0.2" : "198.51.100.1", r.Out);
        WaitForQueries("isp2", isp2);
        string source = server.Contains(':') ? "fd02::2" : "10.2.0.2";
        var asked = DnsLog("isp2").Skip(isp2).ToList();
        Assert.NotEmpty(asked);
        Assert.All(asked, l => Assert.StartsWith($"dns isp2 {source} {WhoamiName} ", l));
        Assert.Equal(stub, DnsQueries("stub"));  // the host's stub never saw it
        Assert.Equal(isp1, DnsQueries("isp1"));  // nor did anything behind the default route
    }

    [RootFact]
    public void Dns_host_keeps_the_hosts_resolver_silently()
    {
        int stub = DnsQueries("stub"), isp2 = DnsQueries("isp2");
        var r = Via(["run", "--dev", "up2", "--dns", "host", "--", .. Lookup("getent")]);
        Assert.Equal(0, r.Code);
        Assert.Equal("", r.Err);
        WaitForQueries("stub", stub);
        Assert.True(DnsQueries("stub") > stub, "--dns host did not keep the host's stub");
        Assert.Equal(isp2, DnsQueries("isp2"));
    }

    [RootFact]
    public void Without_dns_via_warns_once_that_the_stub_leaks()
    {
        var r = Via(["run", "--dev", "up2", "--", "true"]);
        Assert.Equal(0, r.Code);
        var line = Assert.Single(r.Err.Trim().Split('\n'));
        Assert.StartsWith("via: DNS: /etc/resolv.conf names 127.0.0.53, a local stub", line);
        Assert.Contains("not through up2", line);
        Assert.Contains("--dns ADDRESS", line);
        Assert.Contains("--dns host", line);
        // Asked to keep it, via says nothing.
        Assert.Equal("", Via(["run", "--dev", "up2", "--dns", "host", "--", "true"]).Err);
    }

    [RootFact]
    public void The_program_sees_its_own_files_and_the_host_keeps_its_own()
    {
        var r = Via(["run", "--dev", "up2", "--dns", "198.51.100.1", "--dns", "2001:db8:100::1", "--user", "nobody", "--",
            "sh", "-c", "cat /etc/resolv.conf; echo ---; cat /etc/nsswitch.conf"]);
        Assert.Equal(0, r.Code);
        var (resolv, nsswitch) = (r.Out.Split("---\n")[0], r.Out.Split("---\n")[1]);
        var servers = resolv.Split('\n').Where(l => l.StartsWith("nameserver", StringComparison.Ordinal)).ToList();
        Assert.Equal(["nameserver 198.51.100.1", "nameserver 2001:db8:100::1"], servers);
        Assert.Contains("search via.test\n", resolv);   // the host's search and options lines are kept
        Assert.Contains("options edns0\n", resolv);
        Assert.Contains("hosts:          files dns\n", nsswitch);
        Assert.Contains("passwd:         files\n", nsswitch);  // other lines unchanged
        Assert.DoesNotContain("resolve", nsswitch);
        // And via's own namespace (and so the host's) still has the host's files.
        var host = T.InHost(["cat", "/etc/resolv.conf"]);
        Assert.Equal(DnsFixture.HostResolvConf, host.Out);
    }

    [RootFact]
    public void Nscd_is_hidden_from_the_program()
    {
        // nscd's socket directory, made in a private mount namespace of the test's: a tmpfs over /run
        // holding run/nscd/socket and, bound in, the class's state directory. Never on the host.
        string run = Path.Combine(fixture.TempDirectory, "run");
        Directory.CreateDirectory(run);
        string state = fixture.State.StateDirectory, kept = Path.Combine(run, Path.GetFileName(state));
        string setUp = $"mount -t tmpfs none {run} && mkdir {run}/nscd {kept} && touch {run}/nscd/socket && mount --rbind {state} {kept} && mount --rbind {run} /run";
        try
        {
            var r = T.InHost([.. fixture.State.EnvPrefix, "unshare", "-m", "--propagation", "private", "sh", "-c",
                $"{setUp} && {ViaBinary.Path} run --dev up2 --dns {Topology.Server4} -- ls -A /run/nscd; echo status=$?; ls -A /run/nscd"]);
            output.WriteLine($"{r.Code}\n{r.Out}\n{r.Err}");
            Assert.Equal("status=0\nsocket\n", r.Out); // the program saw an empty directory; the socket is still there for everyone else
            var warned = T.InHost([.. fixture.State.EnvPrefix, "unshare", "-m", "--propagation", "private", "sh", "-c", $"{setUp} && {ViaBinary.Path} run --dev up2 -- true"]);
            output.WriteLine(warned.Err);
            Assert.Contains("via: DNS: nscd (/run/nscd/socket)", Assert.Single(warned.Err.Trim().Split('\n')));
        }
        finally
        {
            Directory.Delete(run, recursive: true);
        }
    }

    [RootFact]
    public void A_resolver_on_the_other_uplinks_network_is_named_in_the_warning()
    {
        // The home-router case: resolv.conf names 10.1.0.1, on up1's network, which up2's route does not reach.
        string file = Path.Combine(fixture.TempDirectory, "router-resolv.conf");
        File.WriteAllText(file, "nameserver 10.1.0.1\n");
        try
        {
            var r = T.InHost([.. fixture.State.EnvPrefix, "unshare", "-m", "--propagation", "private", "sh", "-c",
                $"mount --bind {file} /etc/resolv.conf && {ViaBinary.Path} run --dev up2 -- true"]);
            output.WriteLine(r.Err);
            Assert.Equal(0, r.Code);
            var line = Assert.Single(r.Err.Trim().Split('\n'));
            Assert.Contains("names 10.1.0.1, on up1's network, which up2's route does not reach", line);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [RootFact]
    public void A_symlinked_resolv_conf_is_covered_and_its_target_untouched()
    {
        // systemd-resolved's layout, built in a private mount namespace: /etc a copy on a tmpfs, whose
        // resolv.conf is a symlink to a stub file elsewhere.
        string dir = Path.Combine(fixture.TempDirectory, "resolved");
        Directory.CreateDirectory(dir);
        try
        {
            var r = T.InHost([.. fixture.State.EnvPrefix, "unshare", "-m", "--propagation", "private", "sh", "-c",
                $"mkdir {dir}/etc && cp -a /etc/. {dir}/etc/ && mount --bind {dir}/etc /etc && rm /etc/resolv.conf && " +
                $"printf 'nameserver 127.0.0.53\\n' > {dir}/stub-resolv.conf && ln -s {dir}/stub-resolv.conf /etc/resolv.conf && " +
                $"{ViaBinary.Path} run --dev up2 --dns {Topology.Server4} -- cat /etc/resolv.conf && echo --- && cat {dir}/stub-resolv.conf && " +
                $"{ViaBinary.Path} run --dev up2 -- true"]);
            output.WriteLine($"{r.Code}\n{r.Out}\n{r.Err}");
            Assert.Equal(0, r.Code);
            var parts = r.Out.Split("---\n");
            Assert.Contains($"nameserver {Topology.Server4}\n", parts[0]);
            Assert.Equal("nameserver 127.0.0.53\n", parts[1]);
            Assert.Contains($"/etc/resolv.conf (-> {dir}/stub-resolv.conf) names 127.0.0.53", r.Err);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [RootFact]
    public void An_interrupted_run_leaves_no_file_behind()
    {
        // Through the launcher stage the files exist until the program exits: SIGINT to via, forwarded, must still remove them.
        using var via = Kernel.Via.Start(T, ["run", "--dev", "up2", "--dns", Topology.Server4, "--", "sleep", "30"],
            new Dictionary<string, string> { ["VIA_LAUNCHER"] = "stage" });
        string dns = ResolverFiles;
        Kernel.Via.WaitUntil(() => Directory.Exists(dns) && Directory.EnumerateFiles(dns, "*", SearchOption.AllDirectories).Any(), "the launcher stage to write its resolver files", TimeSpan.FromSeconds(20));
        Kernel.Via.WaitUntil(() => Kernel.Via.Routes(T).Any(r => r.GetProperty("processes").EnumerateArray().Any(p => p.GetProperty("command").GetString() == "sleep 30")),
            "via ls to show the program in its route", TimeSpan.FromSeconds(20));
        Assert.Equal(0, Topology.Run("kill", ["-INT", via.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).Code);
        Assert.True(via.WaitForExit(20000), "via did not exit after SIGINT");
        Assert.Equal(130, via.ExitCode);
        // (the class's Dispose asserts the dns directory is gone)
    }

    [RootFact]
    public void Dry_run_shows_the_dns_decision()
    {
        var text = Via(["run", "--dev", "up2", "--dry-run", "--", "true"]);
        Assert.Equal(0, text.Code);
        Assert.Contains("# DNS: the host's resolver, unchanged", text.Out);
        Assert.Contains("# warning: DNS: /etc/resolv.conf names 127.0.0.53", text.Out);
        var json = Via(["run", "--dev", "up2", "--dry-run", "--json", "--dns", "198.51.100.1,2001:db8:100::1", "--", "true"]);
        Assert.Equal(0, json.Code);
        using var doc = System.Text.Json.JsonDocument.Parse(json.Out);
        var d = doc.RootElement.GetProperty("dns");
        Assert.Equal("private", d.GetProperty("mode").GetString());
        Assert.Equal(["198.51.100.1", "2001:db8:100::1"], d.GetProperty("servers").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal("hosts:          files dns", d.GetProperty("nsSwitchHosts").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, d.GetProperty("warning").ValueKind);
    }
}

/// <summary>Bad --dns input: one line, exit 125, the host exactly as it was.</summary>
public sealed class DnsBadInputTests(TopologyFixture<DnsBadInputTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<DnsBadInputTests>>
{
    private Topology T => fixture.Topology;

    [RootTheory]
    [InlineData("nonsense", "'nonsense' is not an IPv4 or IPv6 address")]
    [InlineData("1.2.3.4,", "'1.2.3.4,' has an empty item")]
    [InlineData(",", "has an empty item")]
    [InlineData("10.2.0", "'10.2.0' is not an IPv4 or IPv6 address")]
    [InlineData("host,9.9.9.9", "cannot be combined with addresses")]
    [InlineData("1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4", "at most 3")]
    [InlineData("0.0.0.0", "is not a server address")]
    [InlineData("", "--dns needs an address")]
    public void Refused(string value, string mention)
    {
        var before = HostSnapshot.Take(T);
        byte[] resolv = File.ReadAllBytes("/etc/resolv.conf");
        var r = Kernel.Via.Run(T, "run", "--dev", "up2", "--dns", value, "--", "true");
        output.WriteLine($"--dns '{value}' -> {r.Code}: {r.Err}");
        Assert.Equal(125, r.Code);
        var line = Assert.Single(r.Err.Trim().Split('\n'));
        Assert.StartsWith("via: ", line);
        Assert.Contains(mention, line);
        Assert.Contains("--dns", line);
        Assert.Equal("", r.Out);
        Assert.Equal(resolv, File.ReadAllBytes("/etc/resolv.conf"));
        HostSnapshot.AssertUnchanged(before, T);
    }
}
