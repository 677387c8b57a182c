using System.Globalization;
using System.Net;

namespace Via.Kernel.Processes;

/// <summary>A running process and what hangs on it, read from /proc: its descendants, whether it is a kernel thread, its open sockets.</summary>
public static class ProcessTree
{
    /// <summary>
    /// The process and its descendants (every thread's children, from /proc/PID/task/TID/children,
    /// recursively), parents before children; a process that exits meanwhile is skipped.
    /// </summary>
    public static List<int> WithDescendants(int pid)
    {
        var found = new List<int>();
        var seen = new HashSet<int>();
        var queue = new Queue<int>([pid]);
        while (queue.Count > 0)
        {
            int next = queue.Dequeue();
            if (!seen.Add(next)) continue;
            found.Add(next);
            foreach (int child in Children(next)) queue.Enqueue(child);
        }
        return found;
    }

    private static IEnumerable<int> Children(int pid)
    {
        var children = new List<int>();
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                string text;
                try { text = File.ReadAllText(Path.Combine(task, "children")); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
                foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    if (int.TryParse(word, CultureInfo.InvariantCulture, out int child)) children.Add(child);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return children;
    }

    private const uint PfKthread = 0x00200000;

    /// <summary>True for a kernel thread (PF_KTHREAD in /proc/PID/stat's flags).</summary>
    public static bool IsKernelThread(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // Fields after the command: state(3) ppid(4) pgrp session tty tpgid flags(9).
            return (uint.Parse(fields[6], CultureInfo.InvariantCulture) & PfKthread) != 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return false;
        }
    }

    /// <summary>The path of the process's program (/proc/PID/exe), or null when it cannot be read.</summary>
    public static string? Program(int pid)
    {
        try { return File.ResolveLinkTarget($"/proc/{pid}/exe", returnFinalTarget: false)?.FullName; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// The TCP connections (not listeners) and UDP sockets the processes hold open: their socket
    /// inodes (/proc/PID/fd) looked up in /proc/PID/net/{tcp,tcp6,udp,udp6} of each one's network namespace.
    /// </summary>
    public static List<OpenSocket> Sockets(IEnumerable<int> pids)
    {
        var found = new List<OpenSocket>();
        var seen = new HashSet<ulong>();
        foreach (int pid in pids)
        {
            var inodes = SocketInodes(pid);
            if (inodes.Count == 0) continue;
            foreach (var (file, protocol) in Tables)
            {
                IEnumerable<string> lines;
                try { lines = File.ReadLines($"/proc/{pid}/net/{file}").Skip(1).ToList(); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
                foreach (var line in lines)
                {
                    var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (f.Length < 10 || !ulong.TryParse(f[9], CultureInfo.InvariantCulture, out ulong inode) || !inodes.Contains(inode)) continue;
                    // TCP state 0A is LISTEN: not a connection.
                    if (protocol == "tcp" && f[3] == "0A") continue;
                    if (!seen.Add(inode)) continue;
                    found.Add(new OpenSocket(pid, protocol, Endpoint(f[1]), Endpoint(f[2])));
                }
            }
        }
        return found;
    }

    private static readonly (string File, string Protocol)[] Tables = [("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp")];

    private static HashSet<ulong> SocketInodes(int pid)
    {
        var inodes = new HashSet<ulong>();
        try
        {
            foreach (var fd in Directory.EnumerateFiles($"/proc/{pid}/fd"))
            {
                string? target;
                try { target = File.ResolveLinkTarget(fd, false)?.ToString(); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
                // "socket:[12345]"
                if (target is not null && Path.GetFileName(target) is { } name && name.StartsWith("socket:[", StringComparison.Ordinal)
                    && ulong.TryParse(name.AsSpan(8, name.Length - 9), CultureInfo.InvariantCulture, out ulong inode))
                    inodes.Add(inode);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return inodes;
    }

    /// <summary>"0100007F:1F90" (IPv4, little-endian words) or the IPv6 form, as an endpoint.</summary>
    private static IPEndPoint Endpoint(string hex)
    {
        var parts = hex.Split(':');
        var raw = Convert.FromHexString(parts[0]);
        // /proc prints each 32-bit word in host (little-endian) order.
        for (int i = 0; i < raw.Length; i += 4) Array.Reverse(raw, i, 4);
        var address = new IPAddress(raw);
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        return new IPEndPoint(address, int.Parse(parts[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
    }
}

/// <summary>An open socket of a process: "tcp" or "udp", its local and remote ends (remote 0.0.0.0:0 for an unconnected UDP socket).</summary>
public sealed record OpenSocket(int Pid, string Protocol, IPEndPoint Local, IPEndPoint Remote)
{
    public override string ToString() =>
        Remote.Port == 0 ? $"{Protocol} {Local} (unconnected)" : $"{Protocol} {Local} -> {Remote}";
}
