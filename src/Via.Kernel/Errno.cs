using System.Runtime.InteropServices;

namespace Via.Kernel;

/// <summary>Well-known errno values the layers above test for.</summary>
public static class Errno
{
    public const int EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, EBADF = 9, EAGAIN = 11,
        ENOMEM = 12, EACCES = 13, ENOTEMPTY = 39, ENOSYS = 38, EBUSY = 16, EEXIST = 17, ENOTDIR = 20, EINVAL = 22, ENOSPC = 28,
        ENOEXEC = 8, ENODEV = 19, ENOTSUP = 95, EOPNOTSUPP = 95, ENETUNREACH = 101, EHOSTUNREACH = 113, EADDRNOTAVAIL = 99, ENOBUFS = 105, EWOULDBLOCK = EAGAIN;

    /// <summary>Reads errno of the last P/Invoke at once and wraps it with what failed and on what.</summary>
    public static KernelException Last(string operation, string target) =>
        new(operation, target, Marshal.GetLastPInvokeError());

    public static string Name(int errno) => errno switch
    {
        EPERM => "EPERM", ENOENT => "ENOENT", ESRCH => "ESRCH", EINTR => "EINTR", EIO => "EIO",
        EBADF => "EBADF", EAGAIN => "EAGAIN", ENOMEM => "ENOMEM", EACCES => "EACCES", EBUSY => "EBUSY",
        EEXIST => "EEXIST", ENOTDIR => "ENOTDIR", EINVAL => "EINVAL", ENOSPC => "ENOSPC",
        ENOEXEC => "ENOEXEC", ENODEV => "ENODEV", ENOTSUP => "EOPNOTSUPP", ENETUNREACH => "ENETUNREACH", EHOSTUNREACH => "EHOSTUNREACH",
        EADDRNOTAVAIL => "EADDRNOTAVAIL", ENOBUFS => "ENOBUFS", _ => "errno " + errno,
    };
}

/// <summary>A failed kernel call: the operation, the object it was applied to, and errno.</summary>
public sealed class KernelException(string operation, string target, int errno, string? detail = null)
    : Exception($"{operation} {target}: {ReasonOf(errno, detail)}")
{
    /// <summary>Why, without what: "Invalid argument (EINVAL): Invalid gateway address".</summary>
    public string Reason => ReasonOf(ErrorCode, Detail);

    private static string ReasonOf(int errno, string? detail) =>
        $"{Marshal.GetPInvokeErrorMessage(errno)} ({Errno.Name(errno)}){(detail is null ? "" : ": " + detail)}";

    public string Operation { get; } = operation;
    public string Target { get; } = target;
    public int ErrorCode { get; } = errno;
    public string? Detail { get; } = detail;
}
