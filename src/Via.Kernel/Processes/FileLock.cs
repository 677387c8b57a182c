using System.Text;
using Via.Kernel.Interop;

namespace Via.Kernel.Processes;

/// <summary>
/// An exclusive flock(2) on a file; released when disposed or when the process dies. The holder
/// writes who it is into the file, so that a process waiting for it can say whom it waits for
/// (flock itself does not tell).
/// </summary>
public sealed unsafe class FileLock : IDisposable
{
    private readonly SafeFd _fd;

    private FileLock(SafeFd fd) => _fd = fd;

    /// <summary>Takes the lock without waiting (creating the file); null while another process holds it.</summary>
    public static FileLock? TryAcquire(string path)
    {
        var fd = SafeFd.Open(path, Libc.O_RDWR | Libc.O_CREAT, 0x180 /* 0600 */);
        while (Libc.flock(fd.Value, Libc.LOCK_EX | Libc.LOCK_NB) < 0)
        {
            var error = Errno.Last("flock", path);
            if (error.ErrorCode == Errno.EINTR) continue;
            fd.Dispose();
            if (error.ErrorCode == Errno.EWOULDBLOCK) return null;
            throw error;
        }
        return new FileLock(fd);
    }

    /// <summary>Replaces the file's content with <paramref name="holder"/> (who holds the lock), for <see cref="ReadHolder"/>.</summary>
    public void WriteHolder(string holder)
    {
        byte[] text = Encoding.UTF8.GetBytes(holder + "\n");
        if (Libc.ftruncate(_fd.Value, 0) < 0) throw Errno.Last("ftruncate", "lock file");
        fixed (byte* p = text)
        {
            if (Libc.pwrite(_fd.Value, p, (nuint)text.Length, 0) < 0) throw Errno.Last("write", "lock file");
        }
    }

    /// <summary>
    /// What the current holder wrote into the lock file; null if nothing can be read. Read with
    /// open/pread, not File.ReadAllText: .NET emulates FileShare with flock(LOCK_SH), which fails
    /// on a file another process holds locked, the very case this is for.
    /// </summary>
    public static string? ReadHolder(string path)
    {
        int fd = Libc.open(path, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        if (fd < 0) return null;
        using var file = new SafeFd(fd);
        byte* buffer = stackalloc byte[512];
        nint n = Libc.pread(file.Value, buffer, 512, 0);
        if (n <= 0) return null;
        string text = Encoding.UTF8.GetString(buffer, (int)n).Trim();
        return text.Length == 0 ? null : text;
    }

    public void Dispose() => _fd.Dispose();
}
