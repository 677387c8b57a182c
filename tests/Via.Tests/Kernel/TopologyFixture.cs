using Via.Cli.Commands.Demo;

namespace Via.Tests.Kernel;

/// <summary>One two-uplink topology (see <see cref="Topology"/>) per test class, removed after it.</summary>
public sealed class TopologyFixture : IDisposable
{
    private static int _counter;
    private readonly Lazy<Topology> _topology;

    public TopologyFixture() =>
        _topology = new Lazy<Topology>(() => Topology.Create($"vt{Environment.ProcessId % 100000}x{Interlocked.Increment(ref _counter)}", ViaBinary.Path));

    public Topology Topology => _topology.Value;

    public void Dispose()
    {
        if (_topology.IsValueCreated) _topology.Value.Dispose();
    }
}

/// <summary>Helpers shared by the kernel tests.</summary>
public static class Via
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>ip netns exec HOST bin/via ARGS...</summary>
    public static (int Code, string Out, string Err) Run(Topology t, params string[] args) =>
        t.InHost([ViaBinary.Path, .. args], Timeout);

    /// <summary>via run --dev up2 -- COMMAND..., in the topology's host namespace.</summary>
    public static (int Code, string Out, string Err) Up2(Topology t, params string[] command) =>
        Run(t, ["run", "--dev", "up2", "--", .. command]);

    /// <summary>Starts bin/via ARGS in the host namespace in the background, its stdout readable.</summary>
    public static System.Diagnostics.Process Start(Topology t, IEnumerable<string> args, IDictionary<string, string>? environment = null)
    {
        var start = new System.Diagnostics.ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", t.Host, ViaBinary.Path }.Concat(args)) start.ArgumentList.Add(a);
        if (environment is not null) foreach (var (k, v) in environment) start.Environment[k] = v;
        return System.Diagnostics.Process.Start(start)!;
    }

    /// <summary>The command line of the .NET probe client, for sh -c.</summary>
    public static string ProbeLine(string proto, string address) => string.Join(' ', Clients.DotNet(proto, address));

    public static string Port => Topology.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Polls <paramref name="condition"/> every 50 ms until it holds; fails the test after <paramref name="bound"/> (default <see cref="Timeout"/>).</summary>
    public static void WaitUntil(Func<bool> condition, string what, TimeSpan? bound = null)
    {
        var deadline = DateTime.UtcNow + (bound ?? Timeout);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("waited too long for " + what);
            Thread.Sleep(50);
        }
    }
}
