using System.Collections.Concurrent;
using System.Diagnostics;
using Via.Cli.Commands.Demo;

namespace Via.Tests.Kernel;

/// <summary>
/// A capture on the ISP's end of an uplink (sniff.py): the destination ports of the probe
/// packets that arrived. <see cref="Fence"/> sends one more packet the ordinary way through the
/// same link and waits for it: anything sent before it would have arrived before it.
/// </summary>
public sealed class Capture : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentDictionary<int, int> _seen = new();
    private readonly ManualResetEventSlim _ready = new();
    private readonly int _uplink;

    /// <summary>Fence ports, away from the probes' (sniff.py reports 40000-40999).</summary>
    private static int _fencePort = 40800;

    private Capture(Process process, int uplink)
    {
        _process = process;
        _uplink = uplink;
    }

    public static Capture Start(Topology t, int uplink)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", t.Isp(uplink), Clients.Python, Path.Combine(ViaBinary.RepositoryRoot, "tests", "Via.Tests", "Kernel", "Scripts", "sniff.py"), "wan" }) start.ArgumentList.Add(a);
        var capture = new Capture(Process.Start(start)!, uplink);
        capture._process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            if (e.Data == "ready") capture._ready.Set();
            else if (int.TryParse(e.Data, out int port)) capture._seen.AddOrUpdate(port, 1, (_, n) => n + 1);
        };
        capture._process.BeginOutputReadLine();
        if (!capture._ready.Wait(TimeSpan.FromSeconds(20)))
        {
            capture.Dispose();
            throw new InvalidOperationException("the capture on " + t.Isp(uplink) + " did not start: " + capture._process.StandardError.ReadToEnd());
        }
        return capture;
    }

    public bool Saw(int port) => _seen.ContainsKey(port);

    public bool WaitFor(int port)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!Saw(port) && DateTime.UtcNow < deadline) Thread.Sleep(20);
        return Saw(port);
    }

    public void Fence(Topology t)
    {
        int port = Interlocked.Increment(ref _fencePort);
        var r = t.InHost([Clients.Python, "-c", $"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'fence', ('10.{_uplink}.0.1', {port}))"]);
        Assert.Equal(0, r.Code);
        Assert.True(WaitFor(port), "the fence packet did not arrive: the capture is not working");
    }

    public void Dispose()
    {
        try
        {
            _process.StandardInput.Close(); // sniff.py exits at the end of its input
            if (!_process.WaitForExit(5000)) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
        _ready.Dispose();
    }
}
