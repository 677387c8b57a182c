using System.Runtime.InteropServices;

namespace Via.Kernel.Interop;

/// <summary>
/// libc entry points, declarations only. Every call sets errno; callers read it at once
/// with <see cref="Marshal.GetLastPInvokeError"/> (see <see cref="Errno"/>).
/// </summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc";

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int close(int fd);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int socket(int domain, int type, int protocol);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int bind(int fd, void* addr, uint addrlen);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint send(int fd, void* buf, nuint len, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint recv(int fd, void* buf, nuint len, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int poll(PollFd* fds, nuint count, int timeoutMs);

    /// <summary>struct pollfd from &lt;poll.h&gt;.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    internal const short POLLIN = 1;
    internal const int MSG_DONTWAIT = 0x40;

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int setsockopt(int fd, int level, int name, void* value, uint len);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int getsockopt(int fd, int level, int name, void* value, uint* len);

    /// <summary>syscall(2) with three arguments; glibc's wrapper only moves registers, so the
    /// non-variadic declaration is safe on x86-64 and arm64.</summary>
    [LibraryImport(Lib, EntryPoint = "syscall", SetLastError = true)]
    internal static partial nint syscall3(nint number, nint a1, nint a2, nint a3);

    [LibraryImport(Lib, EntryPoint = "syscall", SetLastError = true)]
    internal static partial nint syscall5(nint number, nint a1, nint a2, nint a3, nint a4, nint a5);

    /// <summary>The new mount API (Linux 5.2): one number on every architecture (asm-generic, after 424).</summary>
    internal const long SYS_fsopen = 430, SYS_fsconfig = 431, SYS_fsmount = 432;
    internal const int FSOPEN_CLOEXEC = 1, FSCONFIG_CMD_CREATE = 6, FSMOUNT_CLOEXEC = 1, MOUNT_ATTR_RDONLY = 1;

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int open(string path, int flags, int mode);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint write(int fd, void* buf, nuint len);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int flock(int fd, int operation);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int ftruncate(int fd, long length);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint pread(int fd, void* buf, nuint len, long offset);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint pwrite(int fd, void* buf, nuint len, long offset);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int mount(string? source, string target, string? fstype, nuint flags, string? data);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int mkdir(string path, int mode);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rmdir(string path);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int kill(int pid, int sig);

    [LibraryImport(Lib)]
    internal static partial uint geteuid();

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int setresuid(uint ruid, uint euid, uint suid);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int setresgid(uint rgid, uint egid, uint sgid);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int setgroups(nuint size, uint* list);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int getgrouplist(string user, uint group, uint* groups, int* ngroups);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial Passwd* getpwnam(string name);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial Passwd* getpwuid(uint uid);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial Group* getgrnam(string name);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial Group* getgrgid(uint gid);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int execvp(byte* file, byte** argv);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int setsid();

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int setns(int fd, int nstype);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int unshare(int flags);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int umount2(string target, int flags);

    internal const int MNT_DETACH = 2;
    internal const nuint MS_BIND = 4096;

    [LibraryImport(Lib)]
    internal static partial int isatty(int fd);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int tcgetpgrp(int fd);

    [LibraryImport(Lib)]
    internal static partial int getpgrp();

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int stat(string path, byte* buf);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int sigprocmask(int how, ulong* set, ulong* oldset);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint signal(int sig, nint handler);

    /// <summary>struct passwd from &lt;pwd.h&gt; (glibc, LP64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Passwd
    {
        public byte* pw_name;
        public byte* pw_passwd;
        public uint pw_uid;
        public uint pw_gid;
        public byte* pw_gecos;
        public byte* pw_dir;
        public byte* pw_shell;
    }

    /// <summary>The leading part of struct group from &lt;grp.h&gt; (glibc, LP64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Group
    {
        public byte* gr_name;
        public byte* gr_passwd;
        public uint gr_gid;
    }

    internal const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0x40, O_CLOEXEC = 0x80000, O_DIRECTORY = 0x10000;
    internal const int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;
    internal const int SOL_SOCKET = 1, SO_RCVTIMEO = 20;
    internal const int SIG_SETMASK = 2;
    internal const int SIGPIPE = 13;
    internal const long SYS_bpf = 321; // x86-64; see Bpf.SyscallNumber for other architectures
}
