using System.Globalization;
using Via.Kernel.Processes;

namespace Via.Cli.Internal;

/// <summary>
/// Fault injection for crash-safety tests: VIA_FAULT=STAGE[:N] makes via SIGKILL itself the N-th
/// time (default 1) it reaches STAGE: "journal" (journal written, nothing applied), "apply" (after
/// each applied change), "exit" (program exited, route not yet left), "undo" (after each undone change).
/// </summary>
public sealed class Fault
{
    private readonly string? _stage;
    private readonly int _count;
    private int _seen;

    private Fault(string? stage, int count) { _stage = stage; _count = count; }

    public static Fault FromEnvironment()
    {
        string? spec = Environment.GetEnvironmentVariable("VIA_FAULT");
        if (string.IsNullOrEmpty(spec)) return new Fault(null, 0);
        var parts = spec.Split(':');
        return new Fault(parts[0], parts.Length > 1 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : 1);
    }

    public void At(string stage)
    {
        if (stage == _stage && ++_seen >= _count) Exec.Signal(Environment.ProcessId, 9);
    }
}
