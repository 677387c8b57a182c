using Via.Kernel.Interop;

namespace Via.Kernel.Cgroups;

/// <summary>The cgroup v1 net_cls controller: its hierarchy's mounts, mounting it, a cgroup's classid.</summary>
public static class NetCls
{
    /// <summary>Whether the kernel has the net_cls controller, enabled (/proc/cgroups).</summary>
    public static bool Known()
    {
        try
        {
            return File.ReadLines("/proc/cgroups").Select(l => l.Split('\t')).Any(f => f.Length >= 4 && f[0] == "net_cls" && f[3] == "1");
        }
        catch (IOException) { return false; }
    }

    /// <summary>Whether net_cls is bound to a cgroup v1 hierarchy (mounted somewhere, now or before: its cgroups keep it).</summary>
    public static bool Bound()
    {
        try
        {
            return File.ReadLines("/proc/cgroups").Select(l => l.Split('\t')).Any(f => f.Length >= 4 && f[0] == "net_cls" && f[1] != "0");
        }
        catch (IOException) { return false; }
    }

    /// <summary>Mount points of a cgroup v1 hierarchy with net_cls in this mount namespace (e.g. /sys/fs/cgroup/net_cls,net_prio).</summary>
    public static IReadOnlyList<string> FindMounts(string mountsFile = "/proc/self/mounts")
    {
        var found = new List<string>();
        foreach (var line in File.ReadLines(mountsFile))
        {
            var f = line.Split(' ');
            if (f.Length >= 4 && f[2] == "cgroup" && f[3].Split(',').Contains("net_cls")) found.Add(f[1].Replace("\\040", " ", StringComparison.Ordinal));
        }
        return found;
    }

    /// <summary>mount -t cgroup -o net_cls net_cls TARGET (creating TARGET).</summary>
    public static void Mount(string target)
    {
        Directory.CreateDirectory(target);
        if (Libc.mount("net_cls", target, "cgroup", 0, "net_cls") < 0) throw Errno.Last("mount -t cgroup -o net_cls", target);
    }

    /// <summary>echo CLASSID &gt; PATH/net_cls.classid.</summary>
    public static void SetClassid(string path, uint classid)
    {
        string file = Path.Combine(path, "net_cls.classid");
        try { File.WriteAllText(file, classid.ToString(System.Globalization.CultureInfo.InvariantCulture)); }
        catch (IOException e) { throw new KernelException("write", file, Errno.EIO, e.Message); }
    }
}
