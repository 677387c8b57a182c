using System.Runtime.InteropServices;
using Via.Kernel.Interop;

namespace Via.Kernel.Netlink;

/// <summary>
/// A NETLINK_ROUTE socket subscribed to the kernel's announcements of changed links, addresses,
/// routes and rules (both families), in the calling thread's network namespace: <c>ip monitor link
/// address route rule</c>. It only says that something changed; the caller reads the host again
/// (a dump is the truth, an announcement can be lost when the socket's buffer overflows).
/// </summary>
public sealed unsafe class RtnlMonitor : IDisposable
{
    private static readonly uint[] Groups =
    [
        Nl.RTNLGRP_LINK, Nl.RTNLGRP_IPV4_IFADDR, Nl.RTNLGRP_IPV6_IFADDR, Nl.RTNLGRP_IPV4_ROUTE,
        Nl.RTNLGRP_IPV6_ROUTE, Nl.RTNLGRP_IPV4_RULE, Nl.RTNLGRP_IPV6_RULE,
    ];

    private readonly SafeFd _socket;
    private readonly byte[] _buffer = new byte[1 << 16];

    private RtnlMonitor(SafeFd socket) => _socket = socket;

    public static RtnlMonitor Open()
    {
        var fd = SafeFd.FromResult(Libc.socket(Nl.AF_NETLINK, Nl.SOCK_RAW | Nl.SOCK_CLOEXEC, Nl.NETLINK_ROUTE), "socket", "AF_NETLINK/NETLINK_ROUTE (monitor)");
        try
        {
            var addr = new SockaddrNl { Family = Nl.AF_NETLINK };
            if (Libc.bind(fd.Value, &addr, (uint)sizeof(SockaddrNl)) < 0) throw Errno.Last("bind", "netlink monitor socket");
            // NETLINK_ADD_MEMBERSHIP takes group numbers; the bind-time bitmask (nl_groups) only reaches groups 1-32.
            foreach (uint group in Groups)
            {
                uint g = group;
                if (Libc.setsockopt(fd.Value, Nl.SOL_NETLINK, Nl.NETLINK_ADD_MEMBERSHIP, &g, sizeof(uint)) < 0)
                    throw Errno.Last("setsockopt NETLINK_ADD_MEMBERSHIP", $"rtnetlink group {group}");
            }
            return new RtnlMonitor(fd);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for an announcement; true if one (or more) came, or
    /// some were lost (ENOBUFS: the socket's buffer overflowed, so something changed). Reads
    /// everything queued, so one burst of changes is one answer.
    /// </summary>
    /// <remarks>With <paramref name="wake"/>, returns false as soon as that is set (the caller was told to stop).</remarks>
    public bool Wait(TimeSpan timeout, Wakeup? wake = null)
    {
        var pfd = stackalloc Libc.PollFd[2];
        pfd[0] = new Libc.PollFd { Fd = _socket.Value, Events = Libc.POLLIN };
        pfd[1] = new Libc.PollFd { Fd = wake?.Fd.Value ?? -1, Events = Libc.POLLIN }; // poll ignores a negative fd
        int ms = (int)Math.Clamp(timeout.TotalMilliseconds, 0, int.MaxValue);
        int ready = Libc.poll(pfd, 2, ms);
        if (ready < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Errno.EINTR) return false;
            throw new KernelException("poll", "netlink monitor socket", errno);
        }
        if (pfd[1].Revents != 0) return false;
        return ready > 0 && Drain();
    }

    /// <summary>Reads every queued announcement without blocking; true if there was any.</summary>
    private bool Drain()
    {
        bool any = false;
        fixed (byte* p = _buffer)
        {
            while (true)
            {
                nint n = Libc.recv(_socket.Value, p, (nuint)_buffer.Length, Libc.MSG_DONTWAIT);
                if (n > 0) { any = true; continue; }
                if (n == 0) return any;
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Errno.EINTR) continue;
                if (errno == Errno.ENOBUFS) { any = true; continue; } // announcements were lost: something changed
                if (errno == Errno.EAGAIN) return any;
                throw new KernelException("recv", "netlink monitor socket", errno);
            }
        }
    }

    public void Dispose() => _socket.Dispose();
}
