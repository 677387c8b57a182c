using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Via.Kernel.Interop;

namespace Via.Kernel.Processes;

/// <summary>A bind mount made in the program's own mount namespace just before execve (mount --bind Source Target).</summary>
public readonly record struct BindMount(string Source, string Target);

/// <summary>
/// Starts a program born inside a cgroup (clone3 with CLONE_INTO_CGROUP, in native code: see
/// Native/via_spawn.c), as a given user, and waits for it.
/// </summary>
public static unsafe partial class Spawn
{
    /// <summary>Where the child failed before the program ran.</summary>
    public enum Stage { None = 0, Credentials = 1, Exec = 2, Mounts = 3, SeccompFilter = 4, NetworkNamespace = 5, JoinCgroup = 6 }

    /// <param name="Pid">The child's pid (to wait for, even when it failed).</param>
    /// <param name="FailedMount">With <see cref="Stage.Mounts"/>: the bind mount that failed, or -1 for the mount namespace itself.</param>
    /// <param name="SeccompListener">When the seccomp filter was asked for and the program runs: the
    /// filter's listener (close-on-exec), the only copy; its supervisor must get it (see seccomp_filter.h).</param>
    public sealed record Started(int Pid, Stage FailedAt, int Errno, int FailedMount = -1, SafeFileHandle? SeccompListener = null);

    [LibraryImport("via_native", EntryPoint = "via_spawn")]
    private static partial int via_spawn(int cgroupFd, byte* path, byte** argv, byte** envp,
        int setIds, uint uid, uint gid, int ngroups, uint* groups,
        int nmounts, byte** mountFrom, byte** mountOn, int njoin, byte** joinProcs, int seccompListener, int inheritFd, int netnsFd, int* listenerFd,
        int* failedStage, int* failedErrno, int* failedIndex);

    [LibraryImport("via_native", EntryPoint = "via_launch_mounts")]
    private static partial int via_launch_mounts(int* failedErrno, int* failedIndex);

    /// <summary>
    /// In the launcher stage: how its private mounts went. They are made before main by a native
    /// constructor (see via_spawn.c: a .NET process has threads, and unshare(CLONE_NEWNS) needs a
    /// single-threaded one). Throws if they failed, or were asked for but not made (a build without the native part).
    /// </summary>
    public static void CheckLauncherMounts(IReadOnlyList<BindMount> mounts)
    {
        if (mounts.Count == 0) return;
        int made, errno = 0, index = -1;
        try
        {
            made = via_launch_mounts(&errno, &index);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            throw new InvalidOperationException("this build of via has no native part (via_spawn.c), so it cannot give the program private mounts");
        }
        if (made < 0) throw MountFailure(mounts, index, errno);
        if (made != mounts.Count) throw new InvalidOperationException($"the launcher made {made} of {mounts.Count} private mounts");
    }

    /// <summary>The error for a failed private mount: which one, and why.</summary>
    public static KernelException MountFailure(IReadOnlyList<BindMount> mounts, int index, int errno) =>
        index >= 0 && index < mounts.Count
            ? new KernelException("mount --bind", $"{mounts[index].Source} {mounts[index].Target}", errno)
            : new KernelException("unshare(CLONE_NEWNS)", "the program's mount namespace", errno);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, int* status, int options);

    /// <summary>
    /// Starts <paramref name="path"/> in the cgroup (none: via's own). Null when this binary or kernel cannot
    /// (no native part in a JIT build; clone3 or CLONE_INTO_CGROUP unsupported): use the launcher stage then.
    /// </summary>
    /// <param name="seccompListener">Install the seccomp mechanism's filter just before the
    /// credentials change and return its listener in <see cref="Started.SeccompListener"/>.</param>
    /// <param name="networkNamespace">A network namespace file (the netns mechanism's) the child enters first.</param>
    /// <param name="inherit">A descriptor the program inherits (at the same number), e.g. the listener given to the supervisor.</param>
    public static Started? TryStart(string? cgroup, string path, IReadOnlyList<string> argv, IReadOnlyList<string> environment, Credentials? who,
        IReadOnlyList<BindMount>? mounts = null, bool seccompListener = false, SafeHandle? inherit = null, string? networkNamespace = null, IReadOnlyList<string>? join = null)
    {
        mounts ??= [];
        using var netns = networkNamespace is null ? null : SafeFd.Open(networkNamespace, Libc.O_RDONLY | Libc.O_CLOEXEC);
        join ??= [];
        using var procs = new NativeStrings(join.Select(d => Path.Combine(d, "cgroup.procs")).ToList());
        using var dir = cgroup is null ? null : Cgroups.Cgroup2.OpenDirectory(cgroup);
        using var args = new NativeStrings(argv);
        using var env = new NativeStrings(environment);
        using var file = new NativeStrings([path]);
        using var from = new NativeStrings(mounts.Select(m => m.Source).ToList());
        using var on = new NativeStrings(mounts.Select(m => m.Target).ToList());
        uint[] groups = who?.Groups ?? [];
        int stage = 0, errno = 0, index = -1, listener = -1, pid;
        bool added = false;
        try
        {
            inherit?.DangerousAddRef(ref added);
            int inheritFd = inherit is null ? -1 : (int)inherit.DangerousGetHandle();
            fixed (uint* g = groups)
                pid = via_spawn(dir?.Value ?? -1, file.Pointer[0], args.Pointer, env.Pointer, who is null ? 0 : 1,
                    who?.Uid ?? 0, who?.Gid ?? 0, groups.Length, g, mounts.Count, from.Pointer, on.Pointer,
                    join.Count, procs.Pointer, seccompListener ? 1 : 0, inheritFd, netns?.Value ?? -1, &listener, &stage, &errno, &index);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
        finally
        {
            if (added) inherit!.DangerousRelease();
        }
        var handle = listener >= 0 ? new SafeFileHandle(listener, ownsHandle: true) : null;
        if (pid == -Errno.ENOSYS || pid == -Errno.EINVAL) return null;
        if (pid < 0) throw new KernelException(cgroup is null ? "clone3" : "clone3(CLONE_INTO_CGROUP)", cgroup ?? path, -pid);
        return new Started(pid, (Stage)stage, errno, index, handle);
    }

    /// <summary>Waits for the child; its exit code, or 128 + N if signal N killed it (as a shell reports it).</summary>
    public static int Wait(int pid)
    {
        int status;
        while (waitpid(pid, &status, 0) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EINTR) throw new KernelException("waitpid", $"pid {pid}", errno);
        }
        int signal = status & 0x7f;
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal;
    }
}
