using System.Globalization;
using Via.Kernel.Processes;

namespace Via.Engine;

/// <summary>
/// Fault injection for crash-safety tests: VIA_FAULT=STAGE[:N] makes via SIGKILL itself the N-th
/// time (default 1) it reaches STAGE: "journal" (journal written, nothing applied), "apply" (after
/// each applied change), "exit" (program exited, route not yet left), "undo" (after each undone
/// change), "command" (a command is about to run). VIA_FAULT=STAGE:N:fail throws an exception there
/// instead, as a failure that comes after the kernel did the work would (a lost netlink answer).
/// </summary>
public sealed class Fault
{
    private readonly string? _stage;
    private readonly int _count;
    private readonly bool _fail;
    private int _seen;

    private Fault(string? stage, int count, bool fail) { _stage = stage; _count = count; _fail = fail; }

    public static Fault FromEnvironment()
    {
        string? spec = Environment.GetEnvironmentVariable("VIA_FAULT");
        if (string.IsNullOrEmpty(spec)) return new Fault(null, 0, false);
        var parts = spec.Split(':');
        return new Fault(parts[0], parts.Length > 1 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : 1, parts.Length > 2 && parts[2] == "fail");
    }

    public void At(string stage)
    {
        if (stage != _stage || ++_seen != _count) return;
        if (_fail) throw new InjectedFaultException($"injected fault at {stage}:{_count} (VIA_FAULT)");
        Exec.Signal(Environment.ProcessId, 9);
    }
}

/// <summary>The failure VIA_FAULT=STAGE:N:fail provokes; not one of the kinds via expects, on purpose.</summary>
public sealed class InjectedFaultException(string message) : Exception(message);
