using Via.Kernel.Cgroups;

namespace Via.Mechanisms.Cgroup;

/// <summary>
/// Where via's cgroups are in this mount namespace. A route made inside <c>ip netns exec</c> records
/// paths under via's private cgroup2 mount; from another mount namespace (a later <c>via gc</c>) the
/// same cgroup is found under that namespace's cgroup2 mount, by its path below the hierarchy's root.
/// </summary>
public static class CgroupPaths
{
    /// <summary>The cgroup2 root of this mount namespace: the unified mount, the hybrid one, or via's private mount (made if needed).</summary>
    public static string Root() => Find() ?? MountPrivate();

    /// <summary>The cgroup2 root visible in this mount namespace, or null: never mounts.</summary>
    public static string? Find() => Preferred(Cgroup2.FindMounts());

    /// <summary>
    /// Where a read-only command reads cgroups: the visible cgroup2 mount, else a detached one
    /// (<see cref="Cgroup2.OpenDetached"/>, as /proc/self/fd/N) that changes no mount table; null
    /// when neither can be had (not root, a kernel before 5.2). Never a path to record.
    /// </summary>
    public static string? FindForReading() => Find() ?? Detached.Value;

    private static readonly Lazy<string?> Detached = new(() =>
    {
        try
        {
            // Kept open for the life of the process: the path below goes through this descriptor.
            _detached = Cgroup2.OpenDetached();
            return $"/proc/self/fd/{_detached.Value}";
        }
        catch (Via.Kernel.KernelException)
        {
            return null;
        }
    });

    private static Via.Kernel.SafeFd? _detached;

    private static string MountPrivate()
    {
        Cgroup2.Mount(RouteCgroups.PrivateMount);
        return RouteCgroups.PrivateMount;
    }

    public static string? Preferred(IReadOnlyList<string> mounts) =>
        mounts.FirstOrDefault(m => m == "/sys/fs/cgroup")
        ?? mounts.FirstOrDefault(m => m == "/sys/fs/cgroup/unified")
        ?? mounts.FirstOrDefault();

    /// <summary>The recorded cgroup path as seen from this mount namespace.</summary>
    public static string Resolve(string recorded) => TryResolve(recorded, mayMount: true)!;

    /// <summary>
    /// <see cref="Resolve"/>, but when no cgroup2 is mounted here and <paramref name="mayMount"/> is
    /// false (a read-only command), null instead of mounting one.
    /// </summary>
    public static string? TryResolve(string recorded, bool mayMount)
    {
        if (Directory.Exists(recorded)) return recorded;
        string marker = "/" + RouteCgroups.Subtree + "/";
        int at = recorded.LastIndexOf(marker, StringComparison.Ordinal);
        // Not via's: a cgroup of someone else's (via attach --cgroup), recorded under a cgroup2 mount of another mount namespace.
        string? below = at >= 0 ? recorded[at..] : Below(recorded);
        if (below is null) return recorded;
        string? root = mayMount ? Root() : FindForReading();
        return root is null ? null : root + below;
    }

    /// <summary>
    /// The path below the hierarchy's root ("/system.slice/x.service") of a cgroup directory named
    /// under a cgroup2 mount of this or another mount namespace (the host's /sys/fs/cgroup[/unified],
    /// via's private mount): the same cgroup wherever it is seen from. Null for any other path.
    /// </summary>
    public static string? Below(string path)
    {
        foreach (var mount in (string?[])[Find(), RouteCgroups.PrivateMount, "/sys/fs/cgroup/unified", "/sys/fs/cgroup"])
        {
            if (mount is null) continue;
            if (path == mount) return "/";
            if (path.StartsWith(mount + "/", StringComparison.Ordinal)) return path[mount.Length..];
        }
        return null;
    }
}
