using Via.Kernel.Processes;

namespace Via.Tests.Kernel;

/// <summary>A test that needs root (namespaces, cgroups, bpf). Skipped, with the reason printed, when not root.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!Exec.IsRoot) Skip = NeedsRoot.Reason;
    }
}

/// <summary>A theory that needs root; skipped, with the reason printed, when not root.</summary>
public sealed class RootTheoryAttribute : TheoryAttribute
{
    public RootTheoryAttribute()
    {
        if (!Exec.IsRoot) Skip = NeedsRoot.Reason;
    }
}

internal static class NeedsRoot
{
    public const string Reason = "needs root: kernel tests create network namespaces, cgroups and eBPF programs (run the tests as root, as CI does)";
}
