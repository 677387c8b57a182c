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

    /// <summary>What the current holder wrote into the lock file; null if nothing can be read.</summary>
    public static string? ReadHolder(string path)
    {
        try
        {
            string text = File.ReadAllText(path).Trim();
            return text.Length == 0 ? null : text;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public void Dispose() => _fd.Dispose();
}
