using System.Text.Json;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>via doctor reports what the host offers, and fails when the default mechanism cannot work.</summary>
public sealed class DoctorTests(TopologyFixture<DoctorTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<DoctorTests>>
{
    private Topology T => fixture.Topology;

    private Dictionary<string, (string Status, string Detail)> Doctor(out int code, params string[] prefix)
    {
        var r = T.InHost([.. prefix, .. Via.Line(T, [], ["doctor", "--json"])]);
        output.WriteLine(r.Out + r.Err);
        code = r.Code;
        using var doc = JsonDocument.Parse(r.Out);
        return doc.RootElement.EnumerateArray().ToDictionary(
            c => c.GetProperty("check").GetString()!,
            c => (c.GetProperty("status").GetString()!, c.GetProperty("detail").GetString()!));
    }

    [RootFact]
    public void A_capable_host_passes_and_every_area_is_reported()
    {
        var before = HostSnapshot.Take(T);
        var checks = Doctor(out int code);
        Assert.Equal(0, code);
        foreach (var name in new[] { "privileges", "cgroup2", "method cgroup", "method auto", "nftables", "cgroup v1 net_cls", "network namespaces", "rp_filter", "dns", "marks", "priority", "tables", "systemd-networkd", "leftovers" })
            Assert.True(checks.ContainsKey(name), "missing check " + name);
        Assert.Equal("ok", checks["privileges"].Status);
        Assert.Equal("ok", checks["method cgroup"].Status);
        Assert.Contains("uses cgroup", checks["method auto"].Detail);
        var text = Via.Run(T, "doctor");
        Assert.Equal(0, text.Code);
        Assert.Contains("method cgroup", text.Out);
        HostSnapshot.AssertUnchanged(before, T); // the probe's scratch cgroup and programs are gone
    }

    [RootFact]
    public void Strict_rp_filter_local_dns_stubs_and_leftovers_are_reported()
    {
        string etc = Path.Combine("/etc/netns", T.Host); // ip netns exec bind-mounts these files over /etc
        Directory.CreateDirectory(etc);
        File.WriteAllText(Path.Combine(etc, "resolv.conf"), "nameserver 127.0.0.53\n");
        T.InHost(["sysctl", "-qw", "net.ipv4.conf.up2.rp_filter=1"]);
        Topology.Ip("-n", T.Host, "rule", "add", "pref", "12000", "fwmark", "0xfd0000/0xff0000", "lookup", "22998", "proto", "86");
        try
        {
            var checks = Doctor(out int code);
            Assert.Equal(0, code);
            Assert.Contains("up2", checks["rp_filter"].Detail);
            Assert.Equal("warn", checks["dns"].Status);
            Assert.Contains("127.0.0.53", checks["dns"].Detail);
            Assert.Equal("warn", checks["leftovers"].Status);
            Assert.Contains("22998", checks["leftovers"].Detail);
        }
        finally
        {
            Directory.Delete(etc, recursive: true);
            T.InHost(["sysctl", "-qw", "net.ipv4.conf.up2.rp_filter=0"]);
            Topology.Run("ip", ["-n", T.Host, "rule", "del", "pref", "12000", "lookup", "22998"]);
        }
    }

    [RootFact]
    public void It_fails_with_the_reason_when_via_cannot_work()
    {
        var unprivileged = Doctor(out int code, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups");
        Assert.Equal(1, code);
        Assert.Equal("fail", unprivileged["privileges"].Status);

        // Rules whose mark fields cover all 32 bits: no bit is left for via.
        Topology.Ip("-n", T.Host, "rule", "add", "pref", "5210", "fwmark", "0x80000/0xff0000", "lookup", "main");
        Topology.Ip("-n", T.Host, "rule", "add", "pref", "100", "fwmark", "0x0/0xff00ffff", "lookup", "100");
        try
        {
            var checks = Doctor(out int code2);
            Assert.Equal(1, code2);
            Assert.Equal("fail", checks["marks"].Status);
            Assert.Contains("Tailscale (pref 5210)", checks["marks"].Detail);
            Assert.Contains("an unknown program (pref 100 fwmark 0x0/0xff00ffff lookup 100)", checks["marks"].Detail);
            var text = Via.Run(T, "doctor");
            Assert.Contains("via run cannot work here: marks: no bit of the socket mark is free", text.Out);
            var run = Via.Run(T, "run", "--dev", "up2", "--", "true");
            Assert.Equal(125, run.Code);
            Assert.Contains("Tailscale (pref 5210)", run.Err);
        }
        finally
        {
            Topology.Ip("-n", T.Host, "rule", "del", "pref", "100");
            Topology.Ip("-n", T.Host, "rule", "del", "pref", "5210");
        }
    }

    [RootFact]
    public void It_shows_the_chosen_mask_and_priority_and_why()
    {
        var plain = Doctor(out int code);
        Assert.Equal(0, code);
        Assert.Equal("ok", plain["marks"].Status);
        Assert.StartsWith("mask 0x000000ff: ", plain["marks"].Detail);
        Assert.Equal("12000: no other program's rule before 12000 can take via's packets", plain["priority"].Detail);

        Topology.Ip("-n", T.Host, "rule", "add", "pref", "5270", "lookup", "52");
        try
        {
            var checks = Doctor(out _);
            Assert.Equal("5269: just before rule pref 5270 lookup 52, Tailscale's, which would take via's packets", checks["priority"].Detail);
            var text = Via.Run(T, "doctor");
            Assert.Matches(@"ok +priority +5269: just before rule pref 5270", text.Out);
            Assert.Matches(@"ok +marks +mask 0x000000ff: ", text.Out);
        }
        finally
        {
            Topology.Ip("-n", T.Host, "rule", "del", "pref", "5270");
        }

        // Read back from the kernel: 'not' counts (it matches via's packets), an input interface
        // other than lo does not (locally sent packets come from lo).
        Topology.Ip("-n", T.Host, "rule", "add", "pref", "1000", "not", "fwmark", "0xca6c", "lookup", "51820");
        Topology.Ip("-n", T.Host, "rule", "add", "pref", "900", "iif", "up1", "lookup", "100");
        try
        {
            Assert.Equal("999: just before rule pref 1000 not fwmark 0xca6c lookup 51820, WireGuard (wg-quick)'s, which would take via's packets",
                Doctor(out _)["priority"].Detail);
        }
        finally
        {
            Topology.Ip("-n", T.Host, "rule", "del", "pref", "1000");
            Topology.Ip("-n", T.Host, "rule", "del", "pref", "900");
        }
    }

    [RootFact]
    public void It_warns_when_a_rule_of_another_program_now_comes_before_via_rules()
    {
        // A route of via's made at 12000 before Tailscale came up with its 'lookup 52' at 5270.
        Topology.Ip("-n", T.Host, "rule", "add", "pref", "12000", "fwmark", "0x1/0xff", "lookup", "22997", "proto", "86");
        Topology.Ip("-n", T.Host, "rule", "add", "pref", "5270", "lookup", "52");
        try
        {
            var checks = Doctor(out int code);
            Assert.Equal(0, code);
            Assert.Equal("warn", checks["priority"].Status);
            Assert.Contains("table(s) 22997 come after rule pref 5270 lookup 52, Tailscale's", checks["priority"].Detail);
        }
        finally
        {
            Topology.Run("ip", ["-n", T.Host, "rule", "del", "pref", "5270", "lookup", "52"]);
            Topology.Run("ip", ["-n", T.Host, "rule", "del", "pref", "12000", "lookup", "22997"]);
        }
    }

    [RootFact]
    public void It_warns_when_systemd_networkd_would_delete_via_rules_and_shows_the_drop_in()
    {
        string root = Path.Combine(Path.GetTempPath(), $"via-systemd-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "run/systemd/netif"));
            Directory.CreateDirectory(Path.Combine(root, "etc/systemd/networkd.conf.d"));
            File.WriteAllText(Path.Combine(root, "etc/systemd/networkd.conf"), "[Network]\n#ManageForeignRoutingPolicyRules=yes\n");
            var warned = Doctor(out int code, "env", $"VIA_SYSTEMD_ROOT={root}");
            Assert.Equal(0, code); // a warning, not a failure
            Assert.Equal("warn", warned["systemd-networkd"].Status);
            Assert.Contains("running", warned["systemd-networkd"].Detail);
            Assert.Contains("defaults to yes", warned["systemd-networkd"].Detail);
            Assert.Contains("/etc/systemd/networkd.conf.d/via.conf with \"[Network]\\nManageForeignRoutingPolicyRules=no\"", warned["systemd-networkd"].Detail);

            // The drop-in doctor shows stops it.
            File.WriteAllText(Path.Combine(root, "etc/systemd/networkd.conf.d/via.conf"), "[Network]\nManageForeignRoutingPolicyRules=no\n");
            var fixedUp = Doctor(out _, "env", $"VIA_SYSTEMD_ROOT={root}");
            Assert.Equal("ok", fixedUp["systemd-networkd"].Status);
            Assert.Contains("/etc/systemd/networkd.conf.d/via.conf", fixedUp["systemd-networkd"].Detail);

            // NetworkManager: reported, no warning.
            Directory.CreateDirectory(Path.Combine(root, "run/NetworkManager"));
            Assert.Equal("ok", Doctor(out _, "env", $"VIA_SYSTEMD_ROOT={root}")["NetworkManager"].Status);

            // No networkd at all.
            Directory.Delete(Path.Combine(root, "run/systemd"), recursive: true);
            Assert.Equal("not installed", Doctor(out _, "env", $"VIA_SYSTEMD_ROOT={root}")["systemd-networkd"].Detail);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
