using System.Runtime.InteropServices;
using Via.Kernel.Interop;

namespace Via.Kernel;

/// <summary>Replacing a file by a new one atomically, without the flush that ext4 adds to a rename over an existing file.</summary>
public static unsafe partial class FileSwap
{
    [LibraryImport("libc", EntryPoint = "renameat2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int renameat2(int olddirfd, string oldpath, int newdirfd, string newpath, uint flags);

    private const int AT_FDCWD = -100;
    private const uint RENAME_EXCHANGE = 2;

    /// <summary>
    /// Puts <paramref name="temp"/> in the place of <paramref name="path"/>. ext4 (without
    /// noauto_da_alloc) starts writing the new file's data out when a rename replaces an existing
    /// file, so that a power cut leaves the old or the new content (several ms on a busy disk);
    /// via's state lives in /run, which does not survive a reboot anyway (and is ext4, not tmpfs,
    /// on some hosts, this one included). So where <paramref name="path"/> exists, the two are
    /// exchanged (renameat2 RENAME_EXCHANGE, atomic as well: a reader sees the old or the new
    /// file) and the old one, now at <paramref name="temp"/>, is removed; a file system without
    /// exchange gets the plain rename.
    /// </summary>
    public static void Replace(string temp, string path)
    {
        if (renameat2(AT_FDCWD, temp, AT_FDCWD, path, RENAME_EXCHANGE) == 0)
        {
            File.Delete(temp);
            return;
        }
        int errno = Marshal.GetLastPInvokeError();
        if (errno is not (Errno.ENOENT or Errno.EINVAL or Errno.ENOSYS))
            throw new KernelException("renameat2 RENAME_EXCHANGE", $"{temp} {path}", errno);
        File.Move(temp, path, overwrite: true); // no file to exchange with (ENOENT), or no exchange here
    }
}
