using System.Runtime.InteropServices;
using Via.Kernel.Interop;

namespace Via.Kernel;

/// <summary>Network namespaces: naming the current one, finding one by name, entering it on the calling thread.</summary>
public static unsafe class Namespaces
{
    internal const int CLONE_NEWNET = 0x40000000;

    private const int SoNetnsCookie = 71;

    /// <summary>offsetof(struct stat, st_ino) on x86-64 and arm64 (checked by LayoutTests), and a buffer larger than the struct.</summary>
    internal const int StatInodeOffset = 8, StatBufferSize = 256;

    /// <summary>The calling thread's network namespace, as the kernel names it ("net:[4026531840]").</summary>
    public static string CurrentNetwork() =>
        new FileInfo("/proc/thread-self/ns/net").LinkTarget ?? throw new IOException("cannot read /proc/thread-self/ns/net");

    /// <summary>
    /// The calling thread's network namespace's cookie: the 64-bit number the kernel gives each
    /// namespace once and never reuses (unlike the inode), what an eBPF program's
    /// bpf_get_netns_cookie returns. Read with getsockopt(SO_NETNS_COOKIE) on a socket made for it (Linux 5.14).
    /// </summary>
    public static ulong CurrentNetworkCookie()
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        Span<byte> cookie = stackalloc byte[8];
        try
        {
            int n = socket.GetRawSocketOption(Libc.SOL_SOCKET, SoNetnsCookie, cookie);
            if (n != 8) throw new KernelException("getsockopt(SO_NETNS_COOKIE)", "a UDP socket", Errno.EINVAL);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new KernelException("getsockopt(SO_NETNS_COOKIE)", "a UDP socket (Linux 5.14 or later has it)", e.ErrorCode);
        }
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(cookie);
    }

    /// <summary>
    /// A path that names the network namespace <paramref name="id"/>: a bind mount under /run/netns
    /// (ip netns add) or a process's /proc/PID/ns/net. Null when nothing holds it any more (it is gone,
    /// and its rules and routes with it).
    /// </summary>
    public static string? FindNetwork(string id)
    {
        if (CurrentNetwork() == id) return "/proc/thread-self/ns/net";
        ulong? inode = ulong.TryParse(id.AsSpan()[5..^1], out ulong ino) ? ino : null;
        if (inode is not null && Directory.Exists("/run/netns"))
            foreach (var file in Directory.EnumerateFiles("/run/netns"))
                if (Inode(file) == inode) return file;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out _)) continue;
            try
            {
                string link = Path.Combine(dir, "ns", "net");
                if (new FileInfo(link).LinkTarget == id) return link;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return null;
    }

    /// <summary>Runs <paramref name="action"/> on this thread inside the network namespace at <paramref name="path"/>, then returns.</summary>
    public static T InNetwork<T>(string path, Func<T> action)
    {
        using var home = SafeFd.Open("/proc/thread-self/ns/net", Libc.O_RDONLY);
        using var target = SafeFd.Open(path, Libc.O_RDONLY);
        if (Libc.setns(target.Value, CLONE_NEWNET) < 0) throw Errno.Last("setns", path);
        try
        {
            return action();
        }
        finally
        {
            if (Libc.setns(home.Value, CLONE_NEWNET) < 0) Environment.FailFast("via: cannot return to its own network namespace");
        }
    }

    /// <summary>Moves the calling thread into the network namespace at <paramref name="path"/> for good (the launcher stage, just before execve).</summary>
    public static void EnterNetwork(string path)
    {
        using var target = SafeFd.Open(path, Libc.O_RDONLY);
        if (Libc.setns(target.Value, CLONE_NEWNET) < 0) throw Errno.Last("setns(CLONE_NEWNET)", path);
    }

    /// <summary>
    /// <c>ip netns add</c> at <paramref name="path"/> (any file, made here): a new network namespace,
    /// held by a bind mount of its nsfs file, so it lives until <see cref="RemoveNetwork"/>. Made on
    /// the calling thread, which then returns to its own namespace.
    /// </summary>
    public static void CreateNetwork(string path)
    {
        using (File.Create(path)) { }
        using var home = SafeFd.Open("/proc/thread-self/ns/net", Libc.O_RDONLY);
        if (Libc.unshare(CLONE_NEWNET) < 0) throw Errno.Last("unshare(CLONE_NEWNET)", path);
        try
        {
            if (Libc.mount("/proc/thread-self/ns/net", path, null, Libc.MS_BIND, null) < 0) throw Errno.Last("mount --bind /proc/thread-self/ns/net", path);
        }
        finally
        {
            if (Libc.setns(home.Value, CLONE_NEWNET) < 0) Environment.FailFast("via: cannot return to its own network namespace");
        }
    }

    /// <summary><c>ip netns del</c>: detaches the bind mount (the namespace goes when nothing else holds it) and removes the file; false when there was none.</summary>
    public static bool RemoveNetwork(string path)
    {
        if (!File.Exists(path)) return false;
        if (Libc.umount2(path, Libc.MNT_DETACH) < 0)
        {
            var e = Errno.Last("umount", path);
            if (e.ErrorCode != Errno.EINVAL) throw e; // EINVAL: not a mount point (a crash between the file and the mount)
        }
        File.Delete(path);
        return true;
    }

    /// <summary>st_ino of a file.</summary>
    private static ulong? Inode(string path)
    {
        byte* buffer = stackalloc byte[StatBufferSize];
        if (Libc.stat(path, buffer) < 0) return null;
        return *(ulong*)(buffer + StatInodeOffset);
    }
}
