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
    [InlineData(null)]          // while it builds the namespaces
    [InlineData("demo-built:1")] // namespaces built, servers running, nothing asked yet
    [InlineData("demo-ask:4")]   // between its clients' questions, one route already made and left
    public void An_interrupted_demo_removes_its_namespaces(string? holdAt)
    {
        var start = new ProcessStartInfo(ViaBinary.Path, ["demo"]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (k, v) in state.Environment()) start.Environment[k] = v;
        if (holdAt is not null) start.Environment["VIA_FAULT"] = holdAt + ":hold";
        var err = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var demo = new Process { StartInfo = start };
        demo.ErrorDataReceived += (_, e) => { if (e.Data is not null) err.Enqueue(e.Data); };
        demo.Start();
        demo.BeginErrorReadLine();
        // Wait until it has built something, or reached the step it holds at, then interrupt it.
        if (holdAt is null)
            Via.WaitUntil(() => Namespaces().Contains($"via-demo-{demo.Id}") || demo.HasExited, "the demo to make its first namespace", TimeSpan.FromSeconds(10));
        else
            Via.WaitUntil(() => err.Any(l => l.Contains("holding at " + holdAt, StringComparison.Ordinal)) || demo.HasExited, $"the demo to hold at {holdAt}", TimeSpan.FromSeconds(30));
        Assert.Contains($"via-demo-{demo.Id}", Namespaces());
        Assert.False(demo.HasExited, "the demo finished before it could be interrupted");
        Assert.Equal(0, Topology.Run("kill", ["-INT", demo.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).Code);
        Assert.True(demo.WaitForExit(30000));
        demo.WaitForExit(); // the stderr reader has drained
        output.WriteLine(demo.StandardOutput.ReadToEnd() + string.Join('\n', err));
        Assert.Equal(128 + 2, demo.ExitCode);
        Assert.Contains(err, l => l.Contains("demo interrupted", StringComparison.Ordinal));
        Assert.DoesNotContain("via-demo-", Namespaces());
    }
}
