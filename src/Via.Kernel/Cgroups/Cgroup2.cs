using System.Runtime.InteropServices;
using System.Text;
using Via.Kernel.Interop;

namespace Via.Kernel.Cgroups;

/// <summary>The cgroup v2 filesystem: finding or mounting it, and one cgroup's directory operations.</summary>
public static unsafe class Cgroup2
{
    /// <summary>
    /// Mount points of cgroup2 in this mount namespace, from /proc/self/mounts. Works on unified
    /// (/sys/fs/cgroup) and hybrid (/sys/fs/cgroup/unified) layouts alike.
    /// </summary>
    public static IReadOnlyList<string> FindMounts(string mountsFile = "/proc/self/mounts")
    {
        var found = new List<string>();
        foreach (var line in File.ReadLines(mountsFile))
        {
            var fields = line.Split(' ');
            if (fields.Length >= 3 && fields[2] == "cgroup2") found.Add(Unescape(fields[1]));
        }
        return found;
    }

    // /proc/mounts escapes space, tab, newline and backslash as octal.
    private static string Unescape(string s) =>
        !s.Contains('\\') ? s : System.Text.RegularExpressions.Regex.Replace(s, @"\\([0-7]{3})", m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString());

    /// <summary>mount -t cgroup2 none TARGET (creating TARGET).</summary>
    public static void Mount(string target)
    {
        Directory.CreateDirectory(target);
        if (Libc.mount("none", target, "cgroup2", 0, null) < 0) throw Errno.Last("mount -t cgroup2", target);
    }

    /// <summary>
    /// A read-only cgroup2 mount attached nowhere (fsopen, fsconfig, fsmount): readable through
    /// the returned descriptor (as /proc/self/fd/N/...), invisible in every mount table, gone when
    /// the descriptor is closed. For reading cgroups where none is mounted, without mounting one.
    /// </summary>
    public static SafeFd OpenDetached()
    {
        nint fs;
        fixed (byte* name = "cgroup2\0"u8)
            fs = Libc.syscall3((nint)Libc.SYS_fsopen, (nint)name, Libc.FSOPEN_CLOEXEC, 0);
        using var context = SafeFd.FromResult((int)fs, "fsopen", "cgroup2");
        if (Libc.syscall5((nint)Libc.SYS_fsconfig, context.Value, Libc.FSCONFIG_CMD_CREATE, 0, 0, 0) < 0) throw Errno.Last("fsconfig create", "cgroup2");
        return SafeFd.FromResult((int)Libc.syscall3((nint)Libc.SYS_fsmount, context.Value, Libc.FSMOUNT_CLOEXEC, Libc.MOUNT_ATTR_RDONLY), "fsmount", "cgroup2");
    }

    /// <summary>mkdir PATH; false when it existed already.</summary>
    public static bool Create(string path)
    {
        if (Libc.mkdir(path, 0x1ed /* 0755 */) == 0) return true;
        if (Marshal.GetLastPInvokeError() == Errno.EEXIST) return false;
        throw Errno.Last("mkdir", path);
    }

    /// <summary>rmdir PATH; false when it did not exist. EBUSY while processes remain in it.</summary>
    public static bool Remove(string path)
    {
        if (Libc.rmdir(path) == 0) return true;
        if (Marshal.GetLastPInvokeError() == Errno.ENOENT) return false;
        throw Errno.Last("rmdir", path);
    }

    /// <summary>Moves the calling process into the cgroup (echo 0 &gt; PATH/cgroup.procs).</summary>
    public static void JoinSelf(string path)
    {
        string procs = Path.Combine(path, "cgroup.procs");
        using var fd = SafeFd.Open(procs, Libc.O_WRONLY);
        byte zero = (byte)'0';
        if (Libc.write(fd.Value, &zero, 1) < 0) throw Errno.Last("write 0 to", procs);
    }

    /// <summary>Moves process <paramref name="pid"/> (all its threads) into the cgroup (echo PID &gt; PATH/cgroup.procs).</summary>
    public static void Move(string path, int pid)
    {
        string procs = Path.Combine(path, "cgroup.procs");
        using var fd = SafeFd.Open(procs, Libc.O_WRONLY);
        byte[] text = Encoding.ASCII.GetBytes(pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        fixed (byte* p = text)
            if (Libc.write(fd.Value, p, (nuint)text.Length) < 0) throw Errno.Last($"move pid {pid} into", procs);
    }

    /// <summary>The process's cgroup v2 path below the hierarchy's root ("/system.slice/x.service"), from
    /// /proc/PID/cgroup's "0::" line; null when the process is gone or has none.</summary>
    public static string? Of(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/cgroup"))
                if (line.StartsWith("0::", StringComparison.Ordinal)) return line[3..];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>The cgroup's type (cgroup.type: "domain", "threaded", "domain threaded", "domain invalid"); null for the root, which has none.</summary>
    public static string? Type(string path)
    {
        string file = Path.Combine(path, "cgroup.type");
        return File.Exists(file) ? File.ReadAllText(file).Trim() : null;
    }

    /// <summary>
    /// Whether any process is in the cgroup or its descendants (cgroup.events "populated 1"); null
    /// when nothing exists at <paramref name="path"/>. Throws (IOException, InvalidDataException)
    /// when the path exists but its state cannot be read: the caller decides what not knowing means.
    /// </summary>
    public static bool? Populated(string path)
    {
        if (!Path.Exists(path)) return null;
        string events = Path.Combine(path, "cgroup.events");
        foreach (var line in File.ReadLines(events))
            if (line.StartsWith("populated ", StringComparison.Ordinal)) return line.EndsWith('1');
        throw new InvalidDataException($"{events} has no 'populated' line");
    }

    /// <summary>PIDs in the cgroup itself (cgroup.procs); empty if it is gone.</summary>
    public static List<int> Processes(string path)
    {
        var pids = new List<int>();
        try
        {
            foreach (var line in File.ReadLines(Path.Combine(path, "cgroup.procs")))
                if (int.TryParse(line, out int pid)) pids.Add(pid);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { }
        return pids;
    }

    /// <summary>Opens the cgroup directory (the fd bpf() attaches to).</summary>
    public static SafeFd OpenDirectory(string path) => SafeFd.Open(path, Libc.O_RDONLY | Libc.O_DIRECTORY);
}
