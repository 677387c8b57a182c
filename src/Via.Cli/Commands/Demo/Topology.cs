using System.Collections.Concurrent;
using System.Diagnostics;

namespace Via.Cli.Commands.Demo;

/// <summary>
/// A throwaway network in namespaces, for 'via demo' and the kernel tests:
/// <code>
///   PFX-host: up1 10.1.0.2/24 fd01::2/64 (main default route)    up2 10.2.0.2/24 fd02::2/64 (default route in table 200)
///   PFX-isp1: wan 10.1.0.1 fd01::1        PFX-isp2: wan 10.2.0.1 fd02::1
///   each isp: 198.51.100.1 and 2001:db8:100::1 on lo, and a server on port 8080 that answers
///             "ispN PEER-ADDRESS": which uplink a connection came through, and from which source;
///             the same server answers DNS on port 53 of both addresses (svc.via.test), logging
///             "dns ispN PEER svc.via.test A": which way a lookup went.
/// </code>
/// The same server address behind both uplinks makes the answer name the path actually taken.
/// Built with iproute2 (scaffolding, not via's own work); never touches the root namespace's network.
/// </summary>
public sealed class Topology : IDisposable
{
    public const string Server4 = "198.51.100.1", Server6 = "2001:db8:100::1";
    public const int Port = 8080;

    private readonly List<Process> _servers = [];
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _logs = new();
    private readonly List<string> _namespaces = [];
    private int _disposed;
    private CancellationToken _cancel;

    public string Prefix { get; }
    public string Host => Prefix + "-host";
    public string Isp(int n) => $"{Prefix}-isp{n}";

    private Topology(string prefix) => Prefix = prefix;

    /// <summary>
    /// Builds the topology and starts both servers; on failure, or when <paramref name="cancel"/>
    /// fires (an interrupted demo), removes what it made and throws.
    /// </summary>
    public static Topology Create(string prefix, string viaPath, CancellationToken cancel = default)
    {
        var t = new Topology(prefix) { _cancel = cancel };
        try
        {
            t.Build(viaPath);
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    private void Build(string viaPath)
    {
        foreach (var ns in new[] { Host, Isp(1), Isp(2) })
        {
            lock (_namespaces) _namespaces.Add(ns); // first: an interrupted add is still removed
            Step("netns", "add", ns);
            Step("-n", ns, "link", "set", "lo", "up");
            // No duplicate address detection: addresses (link-local ones too) and their routes are
            // complete as soon as a link is up, so a snapshot of the routes is stable.
            var (code, _, err) = Run("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"], cancel: _cancel);
            if (code != 0) throw new InvalidOperationException($"sysctl accept_dad in {ns}: {err.Trim()}");
        }
        for (int k = 1; k <= 2; k++)
        {
            string isp = Isp(k);
            Step("link", "add", $"up{k}", "netns", Host, "type", "veth", "peer", "name", "wan", "netns", isp);
            Step("-n", Host, "addr", "add", $"10.{k}.0.2/24", "dev", $"up{k}");
            Step("-n", Host, "addr", "add", $"fd0{k}::2/64", "dev", $"up{k}", "nodad");
            Step("-n", Host, "link", "set", $"up{k}", "up");
            Step("-n", isp, "addr", "add", $"10.{k}.0.1/24", "dev", "wan");
            Step("-n", isp, "addr", "add", $"fd0{k}::1/64", "dev", "wan", "nodad");
            Step("-n", isp, "link", "set", "wan", "up");
            Step("-n", isp, "addr", "add", Server4 + "/32", "dev", "lo");
            Step("-n", isp, "addr", "add", Server6 + "/128", "dev", "lo");
        }
        Step("-n", Host, "route", "add", "default", "via", "10.1.0.1", "dev", "up1");
        Step("-n", Host, "-6", "route", "add", "default", "via", "fd01::1", "dev", "up1");
        // The second uplink's default route lives in another table, as a DHCP client or a
        // multi-homing set-up leaves it: via finds the gateway there.
        Step("-n", Host, "route", "add", "default", "via", "10.2.0.1", "dev", "up2", "table", "200");
        Step("-n", Host, "-6", "route", "add", "default", "via", "fd02::1", "dev", "up2", "table", "200");
        for (int k = 1; k <= 2; k++) StartServer(viaPath, k);
        _viaPath = viaPath;
    }

    private void StartServer(string viaPath, int k)
    {
        string name = $"isp{k}";
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        Serve(Isp(k), viaPath, name, ["--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--udp", Server4, "--udp", Server6, "--dns", Server4, "--dns", Server6]);
    }

    /// <summary>
    /// Starts 'via __serve --name NAME ARGS' in namespace <paramref name="ns"/>, stopped with the topology;
    /// its log is <see cref="ServerLog(string)"/>(NAME). Returns once it listens.
    /// </summary>
    public void Serve(string ns, string viaPath, string name, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", ns, viaPath, "__serve", "--name", name }.Concat(args))
            start.ArgumentList.Add(a);
        var server = Process.Start(start) ?? throw new InvalidOperationException("could not start the server in " + ns);
        lock (_servers) _servers.Add(server);
        var log = _logs.GetOrAdd(name, _ => new ConcurrentQueue<string>());
        using var ready = new ManualResetEventSlim();
        server.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            if (e.Data.StartsWith("listening", StringComparison.Ordinal)) ready.Set();
            else log.Enqueue(e.Data);
        };
        server.BeginOutputReadLine();
        if (!ready.Wait(TimeSpan.FromSeconds(20), _cancel))
            throw new InvalidOperationException($"server {name} in {ns} did not start{(server.HasExited ? ": " + server.StandardError.ReadToEnd() : "")}");
    }

    private string? _viaPath;

    /// <summary>
    /// Connections and datagrams the server behind uplink <paramref name="k"/> has answered ("tcp isp1 10.1.0.2"),
    /// every one answered so far included: the server logs before it answers, but its log reaches
    /// this process through a pipe, later. So the server is first asked once from inside its own
    /// namespace (its peer is then its own address, a line no client makes) and the log is read once
    /// that answer's line is in: every earlier one is then too. Those lines are left out.
    /// </summary>
    public IReadOnlyList<string> ServerLog(int k)
    {
        string name = $"isp{k}", marker = $"tcp {name} {Server4}";
        int before = ServerLog(name).Count(l => l == marker);
        if (_viaPath is not null)
        {
            var (code, _, err) = Run("ip", ["netns", "exec", Isp(k), _viaPath, "__probe", "tcp", Server4, Port.ToString(System.Globalization.CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(20));
            if (code != 0) throw new InvalidOperationException($"the server of {name} did not answer from its own namespace: {err.Trim()}");
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while (ServerLog(name).Count(l => l == marker) == before)
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"the server of {name} answered but its log line did not come");
                Thread.Sleep(5); // polling a pipe's reader, not waiting for time to pass
            }
        }
        return [.. ServerLog(name).Where(l => l != marker)];
    }

    /// <summary>What the server named <paramref name="name"/> has answered.</summary>
    public IReadOnlyList<string> ServerLog(string name) => _logs.TryGetValue(name, out var q) ? [.. q] : [];

    /// <summary>Runs ip(8) and throws with its message if it fails.</summary>
    public static void Ip(params string[] args) => Ip(CancellationToken.None, args);

    /// <summary>One ip(8) step of building: stops at once when the build is cancelled.</summary>
    private void Step(params string[] args) => Ip(_cancel, args);

    private static void Ip(CancellationToken cancel, string[] args)
    {
        var (code, _, err) = Run("ip", args, cancel: cancel);
        if (code != 0) throw new InvalidOperationException($"ip {string.Join(' ', args)}: {err.Trim()}");
    }

    /// <summary>Runs a command to completion and returns its status and output.</summary>
    public static (int Code, string Out, string Err) Run(string file, IEnumerable<string> args, TimeSpan? timeout = null, CancellationToken cancel = default)
    {
        cancel.ThrowIfCancellationRequested();
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (!p.WaitForExit(50))
        {
            if (!cancel.IsCancellationRequested && DateTime.UtcNow < deadline) continue;
            // SIGTERM first: a 'via run' step (ip netns exec execs it, so this pid is via's) forwards
            // it to its program and removes its route. SIGKILL would leave the route behind, and the
            // namespace it lives in is deleted next: its journal could then never be finished.
            Via.Kernel.Processes.Exec.Signal(p.Id, 15);
            if (!p.WaitForExit(5000)) p.Kill(entireProcessTree: true);
            cancel.ThrowIfCancellationRequested();
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Runs a command in the host namespace (ip netns exec PFX-host ...).</summary>
    public (int Code, string Out, string Err) InHost(IEnumerable<string> command, TimeSpan? timeout = null) =>
        Run("ip", ["netns", "exec", Host, .. command], timeout, _cancel);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        List<Process> servers;
        lock (_servers) servers = [.. _servers];
        foreach (var s in servers)
        {
            try { s.Kill(entireProcessTree: true); s.WaitForExit(2000); } catch (InvalidOperationException) { }
            s.Dispose();
        }
        List<string> made;
        lock (_namespaces) made = [.. _namespaces];
        foreach (var ns in made) Run("ip", ["netns", "del", ns]);
    }
}
