using System.Runtime.InteropServices;
using Via.Kernel.Interop;

namespace Via.Kernel;

/// <summary>Owns one kernel file descriptor (socket, bpf program, cgroup directory, lock file).</summary>
public sealed class SafeFd : SafeHandle
{
    public SafeFd() : base(-1, ownsHandle: true) { }

    internal SafeFd(int fd) : base(-1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle == -1;

    /// <summary>The raw descriptor, for passing to a syscall while this handle is alive.</summary>
    public int Value => (int)handle;

    protected override bool ReleaseHandle() => Libc.close((int)handle) == 0;

    /// <summary>Wraps a syscall result: a descriptor on success, a typed exception on failure.</summary>
    internal static SafeFd FromResult(int fd, string operation, string target) =>
        fd >= 0 ? new SafeFd(fd) : throw Errno.Last(operation, target);

    /// <summary>open(2) with O_CLOEXEC.</summary>
    public static SafeFd Open(string path, int flags, int mode = 0) =>
        FromResult(Libc.open(path, flags | Libc.O_CLOEXEC, mode), "open", path);
}
