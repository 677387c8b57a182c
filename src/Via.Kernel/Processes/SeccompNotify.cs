using System.Runtime.InteropServices;
using Via.Kernel.Interop;

namespace Via.Kernel.Processes;

/// <summary>
/// What this kernel offers of seccomp user notification, asked without side effects. The filter
/// itself is installed by the native launch (Native/seccomp_filter.h, via_spawn.c) and served by
/// the supervisor bin/via-seccomp; nothing here creates a filter.
/// </summary>
public static unsafe class SeccompNotify
{
    private const int SECCOMP_GET_ACTION_AVAIL = 2;
    private const uint SECCOMP_RET_USER_NOTIF = 0x7fc00000;

    /// <summary>SECCOMP_ADDFD_FLAG_SEND (install a descriptor and answer the call in one step) came in 5.14.</summary>
    public static readonly Version AddFdSend = new(5, 14);

    private static readonly nint SyscallNumber = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 317,
        Architecture.Arm64 => 277,
        _ => -1,
    };

    /// <summary>
    /// Null when seccomp user notification with ADDFD_FLAG_SEND is there, else why not.
    /// seccomp(SECCOMP_GET_ACTION_AVAIL, SECCOMP_RET_USER_NOTIF) says whether the action exists (5.0;
    /// EPERM or ENOSYS where a container's own filter forbids seccomp()); the kernel version, whether
    /// ADDFD_FLAG_SEND does, which cannot be asked without a listener.
    /// </summary>
    public static string? Unavailable(Version kernel)
    {
        if (SyscallNumber < 0) return $"seccomp: via's filter knows x86_64 and arm64, not {RuntimeInformation.ProcessArchitecture}";
        uint action = SECCOMP_RET_USER_NOTIF;
        if (Libc.syscall3(SyscallNumber, SECCOMP_GET_ACTION_AVAIL, 0, (nint)(&action)) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return $"seccomp user notification is not available: {new KernelException("seccomp(SECCOMP_GET_ACTION_AVAIL)", "SECCOMP_RET_USER_NOTIF", errno).Message}";
        }
        if (kernel < AddFdSend)
            return $"kernel {kernel} has seccomp user notification but not SECCOMP_ADDFD_FLAG_SEND (Linux 5.14)";
        return null;
    }

    /// <summary>This kernel's version (uname's release, e.g. 6.1.0-18-amd64 is 6.1.0).</summary>
    public static Version KernelVersion()
    {
        string release;
        try
        {
            release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        }
        catch (IOException)
        {
            return Environment.OSVersion.Version;
        }
        var parts = release.Split('.', '-', '+', '_');
        int Part(int i) => i < parts.Length && int.TryParse(parts[i], out int v) ? v : 0;
        return new Version(Part(0), Part(1), Part(2));
    }
}
