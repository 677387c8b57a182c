using System.Runtime.InteropServices;
using Via.Kernel.Interop;

namespace Via.Kernel.Processes;

/// <summary>
/// A child of via's that is not waited for in the ordinary way (the seccomp supervisor): a pidfd
/// (pidfd_open, 5.3) to wait for its exit with a bound, and a reap that never blocks.
/// </summary>
public sealed unsafe partial class ChildProcess : IDisposable
{
    private const int SYS_pidfd_open = 434; // the same number on x86-64 and arm64
    private const int WNOHANG = 1;

    private readonly SafeFd _pidfd;

    public int Pid { get; }

    private ChildProcess(int pid, SafeFd pidfd)
    {
        Pid = pid;
        _pidfd = pidfd;
    }

    /// <summary>A handle on child <paramref name="pid"/>, which must not have been reaped yet.</summary>
    public static ChildProcess Open(int pid) =>
        new(pid, SafeFd.FromResult((int)Libc.syscall3(SYS_pidfd_open, pid, 0, 0), "pidfd_open", $"pid {pid}"));

    /// <summary>Waits up to <paramref name="bound"/> for the child to exit; if it has, reaps it. True if it is gone.</summary>
    public bool WaitForExit(TimeSpan bound)
    {
        var pfd = new Libc.PollFd { Fd = _pidfd.Value, Events = Libc.POLLIN };
        var deadline = Environment.TickCount64 + (long)bound.TotalMilliseconds;
        while (true)
        {
            int left = (int)Math.Max(0, deadline - Environment.TickCount64);
            int ready = Libc.poll(&pfd, 1, left);
            if (ready > 0) break;
            if (ready == 0) return false;
            int errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EINTR) throw new KernelException("poll", $"pidfd of pid {Pid}", errno);
        }
        int status;
        waitpid(Pid, &status, WNOHANG);
        return true;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, int* status, int options);

    public void Dispose() => _pidfd.Dispose();
}
