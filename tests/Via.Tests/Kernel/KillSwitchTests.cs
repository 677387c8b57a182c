using System.Diagnostics;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>When the uplink goes down mid-run, the program's traffic fails; nothing leaves by the other uplink.</summary>
public sealed class KillSwitchTests(TopologyFixture<KillSwitchTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<KillSwitchTests>>
{
    private Topology T => fixture.Topology;

    [RootFact]
    public void Traffic_fails_closed_when_the_uplink_goes_down()
    {
        var before = HostSnapshot.Take(T);
        string flag = Path.Combine(Path.GetTempPath(), $"via-kill-{Guid.NewGuid():N}");
        string program = Clients.KillSwitchProbe(flag);
        int isp1Before = T.ServerLog(1).Count;
        using var via = Via.Start(T, ["run", "--dev", "up2", "--", Clients.Python, "-c", program]);
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
            // EHOSTUNREACH for both families and both kinds: what the unreachable defaults answer (README, --help).
            foreach (var line in lines) Assert.EndsWith(" error No route to host", line);
            Assert.Equal(isp1Before, T.ServerLog(1).Count);               // not one connection leaked out up1
            // The kernel took up2's own routes away with the link (the finally puts table 200's back):
            // of the routes, compare via's own (proto 86), which must all be gone.
            HostSnapshot.AssertUnchanged(before, T, viaRoutesOnly: true);
        }
        finally
        {
            File.Delete(flag);
            if (!via.HasExited) via.Kill(entireProcessTree: true);
            Topology.Ip("-n", T.Host, "link", "set", "up2", "up");
            // Routes through up2 went with the link; put the table-200 defaults back for other tests.
            Topology.Run("ip", ["-n", T.Host, "route", "replace", "default", "via", "10.2.0.1", "dev", "up2", "table", "200"]);
            Topology.Run("ip", ["-n", T.Host, "-6", "route", "replace", "default", "via", "fd02::1", "dev", "up2", "table", "200"]);
        }
    }

    [RootFact]
    public void Ipv6_is_unreachable_when_the_uplink_has_no_ipv6_route()
    {
        // Take up2's IPv6 default away: via must make IPv6 unreachable for the program, not send it out up1.
        Topology.Ip("-n", T.Host, "-6", "route", "del", "default", "via", "fd02::1", "dev", "up2", "table", "200");
        try
        {
            int isp1Before = T.ServerLog(1).Count;
            var r = Via.Up2(T, "sh", "-c", $"{string.Join(' ', Clients.DotNet("tcp", Topology.Server6))}; {string.Join(' ', Clients.DotNet("tcp", Topology.Server4))}");
            output.WriteLine(r.Out + r.Err);
            Assert.Equal(["error HostUnreachable", "isp2 10.2.0.2"], r.Out.Trim().Split('\n'));
            Assert.Equal(isp1Before, T.ServerLog(1).Count);
        }
        finally
        {
            Topology.Run("ip", ["-n", T.Host, "-6", "route", "replace", "default", "via", "fd02::1", "dev", "up2", "table", "200"]);
        }
    }
}
