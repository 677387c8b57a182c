using System.Text.Json;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>via doctor reports what the host offers, and fails when the default mechanism cannot work.</summary>
public sealed class DoctorTests(TopologyFixture fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture>
{
    private Topology T => fixture.Topology;

    private Dictionary<string, (string Status, string Detail)> Doctor(out int code, params string[] prefix)
    {
        var r = T.InHost([.. prefix, ViaBinary.Path, "doctor", "--json"]);
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
        foreach (var name in new[] { "privileges", "cgroup2", "cgroup eBPF hooks", "seccomp user notif", "nftables", "cgroup v1 net_cls", "network namespaces", "rp_filter", "dns", "marks", "tables", "leftovers" })
            Assert.True(checks.ContainsKey(name), "missing check " + name);
        Assert.Equal("ok", checks["privileges"].Status);
        Assert.Equal("ok", checks["cgroup eBPF hooks"].Status);
        var text = Via.Run(T, "doctor");
        Assert.Equal(0, text.Code);
        Assert.Contains("cgroup eBPF hooks", text.Out);
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

        Topology.Ip("-n", T.Host, "rule", "add", "pref", "100", "fwmark", "0x40000", "lookup", "100");
        try
        {
            var checks = Doctor(out int code2);
            Assert.Equal(1, code2);
            Assert.Equal("fail", checks["marks"].Status);
            var text = Via.Run(T, "doctor");
            Assert.Contains("via run cannot work here: marks:", text.Out);
        }
        finally
        {
            Topology.Ip("-n", T.Host, "rule", "del", "pref", "100");
        }
    }
}
