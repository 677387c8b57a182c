using System.Diagnostics;
using System.Runtime.InteropServices;
using Via.Kernel.Interop;

namespace Via.Kernel.Processes;

/// <summary>Waits a while for a child to exit without reaping it (the caller still waits for it, for its status).</summary>
public static unsafe class ChildExit
{
    private const nint SYS_pidfd_open = 434;

    /// <summary>
    /// True if the child <paramref name="pid"/> exits (or has exited) within <paramref name="timeout"/>;
    /// false if it still runs then, or if this kernel cannot tell (pidfd_open, Linux 5.3): the
    /// caller then treats it as a program that runs on. A signal to via (forwarded by another
    /// thread) does not end the wait early.
    /// </summary>
    public static bool Within(int pid, TimeSpan timeout)
    {
        int fd = (int)Libc.syscall3(SYS_pidfd_open, pid, 0, 0);
        if (fd < 0) return false;
        using var pidfd = new SafeFd(fd);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            int left = (int)Math.Max(0, (timeout - clock.Elapsed).TotalMilliseconds);
            var pfd = new Libc.PollFd { Fd = pidfd.Value, Events = Libc.POLLIN };
            int ready = Libc.poll(&pfd, 1, left);
            if (ready > 0) return true;
            if (ready == 0) return false;
            if (Marshal.GetLastPInvokeError() != Errno.EINTR) return false;
        }
    }
}
