using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>
/// Bad input gets one clear line on stderr naming the object and what to do, exit 125 (127 for a
/// command that is not found), and the host exactly as it was: same rules, routes, cgroups, programs.
/// </summary>
public sealed class BadInputTests(TopologyFixture<BadInputTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<BadInputTests>>
{
    private Topology T => fixture.Topology;

    private void AssertRefused(string[] args, int code, params string[] mentions)
    {
        var before = HostSnapshot.Take(T);
        var r = Via.Run(T, args);
        output.WriteLine($"via {string.Join(' ', args)}\n-> {r.Code}: {r.Err}");
        Assert.Equal(code, r.Code);
        var lines = r.Err.Trim().Split('\n');
        Assert.Single(lines);
        Assert.StartsWith("via: ", lines[0]);
        foreach (var m in mentions) Assert.Contains(m, lines[0]);
        Assert.Equal("", r.Out);
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void Unknown_interface() =>
        AssertRefused(["run", "--dev", "nope0", "--", "true"], 125, "'nope0'", "does not exist", "up1");

    [RootFact]
    public void Interface_down_or_without_address_or_gateway()
    {
        // veth pairs (this kernel may lack the dummy driver), the peers left down.
        Topology.Ip("-n", T.Host, "link", "add", "dumdown", "type", "veth", "peer", "name", "dumdown-p");
        Topology.Ip("-n", T.Host, "link", "add", "dumbare", "type", "veth", "peer", "name", "dumbare-p");
        Topology.Ip("-n", T.Host, "link", "set", "dumbare", "up");
        Topology.Ip("-n", T.Host, "link", "add", "dumnogw", "type", "veth", "peer", "name", "dumnogw-p");
        Topology.Ip("-n", T.Host, "addr", "add", "10.9.0.2/24", "dev", "dumnogw");
        Topology.Ip("-n", T.Host, "link", "set", "dumnogw", "up");
        try
        {
            AssertRefused(["run", "--dev", "dumdown", "--", "true"], 125, "'dumdown' is down", "ip link set dumdown up");
            AssertRefused(["run", "--dev", "dumbare", "--", "true"], 125, "'dumbare' has no address");
            AssertRefused(["run", "--dev", "dumnogw", "--", "true"], 125, "no IPv4 gateway found for 'dumnogw'", "--gateway");
        }
        finally
        {
            foreach (var d in new[] { "dumdown", "dumbare", "dumnogw" }) Topology.Run("ip", ["-n", T.Host, "link", "del", d]);
        }
    }

    [RootFact]
    public void Address_not_on_the_interface() =>
        AssertRefused(["run", "--dev", "up2", "--src", "10.1.0.2", "--", "true"], 125, "10.1.0.2 is not an address of 'up2'", "10.2.0.2");

    [RootFact]
    public void Gateway_not_on_the_interface() =>
        AssertRefused(["run", "--dev", "up2", "--gateway", "10.1.0.1", "--", "true"], 125, "gateway 10.1.0.1 is not on a subnet of 'up2'");

    [RootFact]
    public void A_change_the_kernel_refuses_midway_is_rolled_back()
    {
        // Planning does not judge IPv6 next hops; the kernel refuses a multicast one, in the middle of
        // the batch of routes and rules (IPv4 routes before it, rules after it). All must be undone.
        AssertRefused(["run", "--dev", "up2", "--gateway", "ff02::1", "--", "true"], 125,
            "could not set up the route: ip -6 route add default via ff02::1 dev up2 table", "(EINVAL): Invalid gateway address");
    }

    [RootFact]
    public void Malformed_address() =>
        AssertRefused(["run", "--dev", "up2", "--gateway", "10.2.0", "--", "true"], 125, "'10.2.0' is not an IPv4 or IPv6 address", "--gateway");

    [RootFact]
    public void Dev_given_twice() =>
        AssertRefused(["run", "--dev", "up1", "--dev", "up2", "--", "true"], 125, "--dev", "via run --help");

    [RootFact]
    public void A_program_without_the_double_dash_is_told_how() =>
        AssertRefused(["run", "--dev", "up2", "curl", "--dev", "x"], 125, "--dev", "put the program after '--'");

    [RootFact]
    public void Dev_missing() =>
        AssertRefused(["run", "--", "true"], 125, "--dev");

    [RootFact]
    public void No_command() =>
        AssertRefused(["run", "--dev", "up2"], 125, "no command given");

    [RootFact]
    public void Command_not_found() =>
        AssertRefused(["run", "--dev", "up2", "--", "no-such-command-via-test"], 127, "no-such-command-via-test: command not found");

    [RootFact]
    public void Unknown_user() =>
        AssertRefused(["run", "--dev", "up2", "--user", "no-such-user-via", "--", "true"], 125, "user 'no-such-user-via' does not exist");

    [RootFact]
    public void Not_running_as_root()
    {
        var before = HostSnapshot.Take(T);
        var r = T.InHost(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", .. Via.Line(T, [], ["run", "--dev", "up2", "--", "true"])]);
        output.WriteLine(r.Err);
        Assert.Equal(125, r.Code);
        Assert.Contains("needs root; run it with sudo", r.Err);
        Assert.Single(r.Err.Trim().Split('\n'));
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void Dry_run_prints_the_plan_and_changes_nothing()
    {
        var before = HostSnapshot.Take(T);
        var r = Via.Run(T, "run", "--dev", "up2", "--dry-run", "--", "curl", "http://example.org");
        Assert.Equal(0, r.Code);
        Assert.Contains("ip route add default via 10.2.0.1 dev up2 src 10.2.0.2 table", r.Out);
        Assert.Contains("ip -6 route add unreachable default metric 4278198272", r.Out);
        Assert.Contains("ip rule add pref 12000 from 10.2.0.2/32 lookup", r.Out);
        var json = Via.Run(T, "run", "--dev", "up2", "--dry-run", "--json", "--", "true");
        Assert.Equal(0, json.Code);
        using var doc = System.Text.Json.JsonDocument.Parse(json.Out);
        Assert.Equal("up2", doc.RootElement.GetProperty("device").GetString());
        Assert.Equal("10.2.0.1", doc.RootElement.GetProperty("gateway4").GetString());
        Assert.True(doc.RootElement.GetProperty("steps").GetArrayLength() > 5);
        HostSnapshot.AssertUnchanged(before, T);
    }
}
