using System.Runtime.InteropServices;
using Via.Kernel.Processes;

namespace Via.Cli.Commands.Demo;

/// <summary>
/// 'via demo': builds a <see cref="Topology"/>, asks its server the same question plainly and
/// through 'via run --dev up2', shows both answers, and removes everything, also when interrupted.
/// </summary>
public static class Demo
{
    public static int Run()
    {
        if (!Exec.IsRoot) return Say.Error("'via demo' builds network namespaces and needs root; run it with sudo");
        string via = Environment.ProcessPath ?? "/proc/self/exe";
        string prefix = $"via-demo-{Environment.ProcessId}";
        Console.WriteLine($"Building a host with two uplinks in network namespaces {prefix}-*:");
        Console.WriteLine("  up1 10.1.0.2 --> isp1 (the host's default route)");
        Console.WriteLine("  up2 10.2.0.2 --> isp2 (a default route in table 200 only)");
        Console.WriteLine($"  behind both: server {Topology.Server4} / {Topology.Server6} port {Topology.Port}, which answers with");
        Console.WriteLine("  the uplink the connection came through and the source address it saw.");
        Console.WriteLine();

        Topology? topology = null;
        // Interrupted: stop building or asking (the running step is killed), then the finally
        // below removes the namespaces, and via exits as the signal asked.
        using var interrupted = new CancellationTokenSource();
        int? signalled = null;
        var cleanup = new List<PosixSignalRegistration>();
        foreach (var (signal, number) in new[] { (PosixSignal.SIGINT, 2), (PosixSignal.SIGTERM, 15), (PosixSignal.SIGHUP, 1) })
        {
            cleanup.Add(PosixSignalRegistration.Create(signal, ctx =>
            {
                ctx.Cancel = true;
                signalled ??= number;
                interrupted.Cancel();
            }));
        }
        var fault = Via.Engine.Fault.FromEnvironment(); // tests stop the demo at a chosen step with VIA_FAULT=demo-…:N:hold
        int code;
        try
        {
            topology = Topology.Create(prefix, via, interrupted.Token);
            fault.At("demo-built", interrupted.Token);
            interrupted.Token.ThrowIfCancellationRequested();
            var rows = new List<(string Command, string Answer)>();
            foreach (var (proto, server) in new[] { ("tcp", Topology.Server4), ("udp", Topology.Server4), ("tcp", Topology.Server6) })
            {
                string[] probe = [via, "__probe", proto, server, Topology.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)];
                rows.Add(($"__probe {proto} {server}", Ask(topology, probe, fault, interrupted.Token)));
                rows.Add(($"via run --dev up2 -- __probe {proto} {server}", Ask(topology, [via, "run", "--dev", "up2", "--", .. probe], fault, interrupted.Token)));
            }
            int width = rows.Max(r => r.Command.Length) + 3;
            Console.WriteLine($"{"client (run in the host namespace)".PadRight(width)}server's answer: uplink, source");
            foreach (var (command, answer) in rows) Console.WriteLine($"{command.PadRight(width)}{answer}");
            Console.WriteLine();
            Console.WriteLine("The plain client leaves through the default route (isp1); the same client under");
            Console.WriteLine("'via run --dev up2' leaves through up2 with up2's address, while nothing else changed.");
            code = ExitCodes.Ok;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("via: demo interrupted; removing its namespaces");
            code = ExitCodes.SignalBase + (signalled ?? 2);
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
            code = Say.Error("demo failed: " + e.Message);
        }
        topology?.Dispose();
        foreach (var r in cleanup) r.Dispose();
        Console.WriteLine($"Removed {prefix}-host, -isp1, -isp2.");
        // A signal that came while the demo finished or cleaned up still decides the exit code:
        // the caller asked for an interruption and must be able to tell.
        return signalled is int s && code == ExitCodes.Ok ? ExitCodes.SignalBase + s : code;
    }

    private static string Ask(Topology topology, string[] command, Via.Engine.Fault fault, CancellationToken interrupted)
    {
        fault.At("demo-ask", interrupted);
        interrupted.ThrowIfCancellationRequested();
        var (code, output, error) = topology.InHost(command, TimeSpan.FromSeconds(20));
        string text = (output.Trim() + " " + error.Trim()).Trim();
        return code == 0 ? text : $"failed ({code}): {text}";
    }
}
