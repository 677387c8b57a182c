using System.Diagnostics;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>sudo via demo: shows both answers side by side and leaves nothing behind, also when interrupted.</summary>
public sealed class DemoTests(ClassState<DemoTests> state, ITestOutputHelper output) : IClassFixture<ClassState<DemoTests>>
{
    private static string Namespaces() => Topology.Run("ip", ["netns", "list"]).Out;

    [RootFact]
    public void The_demo_shows_the_plain_and_the_routed_answer_and_cleans_up()
    {
        string[] demo = state.Command([], ["demo"]);
        var r = Topology.Run(demo[0], demo[1..], TimeSpan.FromMinutes(2));
        output.WriteLine(r.Out + r.Err);
        Assert.Equal(0, r.Code);
        var lines = r.Out.Split('\n');
        Assert.Contains(lines, l => l.StartsWith("__probe tcp 198.51.100.1", StringComparison.Ordinal) && l.EndsWith("isp1 10.1.0.2", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("via run --dev up2 -- __probe tcp 198.51.100.1", StringComparison.Ordinal) && l.EndsWith("isp2 10.2.0.2", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("via run --dev up2 -- __probe tcp 2001:db8:100::1", StringComparison.Ordinal) && l.EndsWith("isp2 fd02::2", StringComparison.Ordinal));
        Assert.DoesNotContain("via-demo-", Namespaces());
    }

    [RootTheory]
    [InlineData(0)]     // while it builds the namespaces
    [InlineData(400)]   // while its servers start or its clients ask
    public void An_interrupted_demo_removes_its_namespaces(int delayMs)
    {
        var start = new ProcessStartInfo(ViaBinary.Path, ["demo"]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (k, v) in state.Environment()) start.Environment[k] = v;
        using var demo = Process.Start(start)!;
        // Wait until it has built something, then interrupt it.
        Via.WaitUntil(() => Namespaces().Contains($"via-demo-{demo.Id}") || demo.HasExited, "the demo to make its first namespace", TimeSpan.FromSeconds(10));
        Assert.Contains($"via-demo-{demo.Id}", Namespaces());
        Thread.Sleep(delayMs); // the subject: how far the demo got when interrupted (see the cases), not a condition
        Assert.False(demo.HasExited, "the demo finished before it could be interrupted");
        Assert.Equal(0, Topology.Run("kill", ["-INT", demo.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).Code);
        Assert.True(demo.WaitForExit(30000));
        output.WriteLine(demo.StandardOutput.ReadToEnd() + demo.StandardError.ReadToEnd());
        Assert.Equal(128 + 2, demo.ExitCode);
        Assert.DoesNotContain("via-demo-", Namespaces());
    }
}
