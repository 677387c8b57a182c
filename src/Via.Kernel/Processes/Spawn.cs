using System.Runtime.InteropServices;
using Via.Kernel.Interop;

namespace Via.Kernel.Processes;

/// <summary>
/// Starts a program born inside a cgroup (clone3 with CLONE_INTO_CGROUP, in native code: see
/// Native/via_spawn.c), as a given user, and waits for it.
/// </summary>
public static unsafe partial class Spawn
{
    /// <summary>Where the child failed before the program ran.</summary>
    public enum Stage { None = 0, Credentials = 1, Exec = 2 }

    /// <param name="Pid">The child's pid (to wait for, even when it failed).</param>
    public sealed record Started(int Pid, Stage FailedAt, int Errno);

    [LibraryImport("via_native", EntryPoint = "via_spawn")]
    private static partial int via_spawn(int cgroupFd, byte* path, byte** argv, byte** envp,
        int setIds, uint uid, uint gid, int ngroups, uint* groups, int* failedStage, int* failedErrno);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, int* status, int options);

    /// <summary>
    /// Starts <paramref name="path"/> in the cgroup. Null when this binary or kernel cannot
    /// (no native part in a JIT build; clone3 or CLONE_INTO_CGROUP unsupported): use the launcher stage then.
    /// </summary>
    public static Started? TryStart(string cgroup, string path, IReadOnlyList<string> argv, IReadOnlyList<string> environment, Credentials? who)
    {
        using var dir = Cgroups.Cgroup2.OpenDirectory(cgroup);
        using var args = new NativeStrings(argv);
        using var env = new NativeStrings(environment);
        using var file = new NativeStrings([path]);
        uint[] groups = who?.Groups ?? [];
        int stage = 0, errno = 0, pid;
        try
        {
            fixed (uint* g = groups)
                pid = via_spawn(dir.Value, file.Pointer[0], args.Pointer, env.Pointer, who is null ? 0 : 1,
                    who?.Uid ?? 0, who?.Gid ?? 0, groups.Length, g, &stage, &errno);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
        if (pid == -Errno.ENOSYS || pid == -Errno.EINVAL) return null;
        if (pid < 0) throw new KernelException("clone3(CLONE_INTO_CGROUP)", cgroup, -pid);
        return new Started(pid, (Stage)stage, errno);
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
