using Via.Kernel.Interop;

namespace Via.Kernel.Processes;

/// <summary>An exclusive flock(2) on a file; released when disposed or when the process dies.</summary>
public sealed class FileLock : IDisposable
{
    private readonly SafeFd _fd;

    private FileLock(SafeFd fd) => _fd = fd;

    public static FileLock Acquire(string path)
    {
        var fd = SafeFd.Open(path, Libc.O_RDWR | Libc.O_CREAT, 0x180 /* 0600 */);
        while (Libc.flock(fd.Value, Libc.LOCK_EX) < 0)
        {
            var error = Errno.Last("flock", path);
            if (error.ErrorCode == Errno.EINTR) continue;
            fd.Dispose();
            throw error;
        }
        return new FileLock(fd);
    }

    public void Dispose() => _fd.Dispose();
}
