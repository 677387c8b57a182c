using Via.Kernel.Interop;

namespace Via.Kernel;

/// <summary>
/// An eventfd that one thread sets to wake another out of poll(2) at once (a watcher told to stop,
/// instead of finishing its poll's timeout first).
/// </summary>
public sealed unsafe class Wakeup : IDisposable
{
    private const nint SYS_eventfd2 = 290;
    private const int EFD_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800;

    public SafeFd Fd { get; }

    public Wakeup() =>
        Fd = SafeFd.FromResult((int)Libc.syscall3(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK, 0), "eventfd", "a watcher's wake-up");

    /// <summary>Makes <see cref="Fd"/> readable (and keeps it so: nothing reads it).</summary>
    public void Set()
    {
        ulong one = 1;
        Libc.write(Fd.Value, &one, sizeof(ulong));
    }

    public void Dispose() => Fd.Dispose();
}
