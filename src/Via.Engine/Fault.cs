using System.Globalization;
using Via.Kernel.Processes;

namespace Via.Engine;

/// <summary>
/// Fault injection for crash-safety tests: VIA_FAULT=STAGE[:N] makes via SIGKILL itself the N-th
/// time (default 1) it reaches STAGE: "journal" (journal written, nothing applied), "apply" (after
/// each applied change), "exit" (program exited, route not yet left), "undo" (after each undone
/// change), "command" (a command is about to run). VIA_FAULT=STAGE:N:fail throws an exception there
/// instead, as a failure that comes after the kernel did the work would (a lost netlink answer).
/// VIA_FAULT=STAGE:N:hold stops there instead, says so on stderr ("via: holding at STAGE:N"), and
/// goes on when the token passed to <see cref="At"/> is cancelled (a signal) or after a minute: a
/// test can then interrupt via at a chosen point rather than after a guessed delay.
/// </summary>
public sealed class Fault
{
    private readonly string? _stage;
    private readonly int _count;
    private readonly string? _mode;
    private int _seen;

    private Fault(string? stage, int count, string? mode) { _stage = stage; _count = count; _mode = mode; }

    public static Fault FromEnvironment()
    {
        string? spec = Environment.GetEnvironmentVariable("VIA_FAULT");
        if (string.IsNullOrEmpty(spec)) return new Fault(null, 0, null);
        var parts = spec.Split(':');
        return new Fault(parts[0], parts.Length > 1 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : 1, parts.Length > 2 ? parts[2] : null);
    }

    public void At(string stage, CancellationToken hold = default)
    {
        if (stage != _stage || ++_seen != _count) return;
        switch (_mode)
        {
            case "fail":
                throw new InjectedFaultException($"injected fault at {stage}:{_count} (VIA_FAULT)");
            case "hold":
                Console.Error.WriteLine($"via: holding at {stage}:{_count} (VIA_FAULT)");
                hold.WaitHandle.WaitOne(TimeSpan.FromMinutes(1));
                return;
            default:
                Exec.Signal(Environment.ProcessId, 9);
                return;
        }
    }
}

/// <summary>The failure VIA_FAULT=STAGE:N:fail provokes; not one of the kinds via expects, on purpose.</summary>
public sealed class InjectedFaultException(string message) : Exception(message);
