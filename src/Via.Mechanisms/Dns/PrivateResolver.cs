using System.Globalization;
using Via.Kernel.Processes;

namespace Via.Mechanisms.Dns;

/// <summary>
/// What the program sees in place of the host's resolver configuration: the text of its own
/// resolv.conf and nsswitch.conf, and whether nscd's socket directory is hidden from it.
/// </summary>
/// <param name="NsSwitch">Null when the host has no nsswitch.conf (nothing to mount over; glibc's default asks dns itself).</param>
/// <param name="NscdDirectory">nscd's socket directory, covered by an empty one so that glibc does not ask nscd.</param>
public sealed record PrivateResolver(string ResolvConf, string? NsSwitch, string? NscdDirectory)
{
    /// <summary>
    /// Writes the files (root's, mode 0644) under via's state directory, in dns/PID, and returns
    /// them with the bind mounts that put them in place. Dispose removes them: once the program has
    /// exec'd, its mounts hold the inodes, so nothing is left on disk while it runs. Leftovers of a
    /// via that was SIGKILLed are removed by the next one.
    /// </summary>
    public PrivateResolverFiles Write() => PrivateResolverFiles.Create(this);
}

/// <summary>The written files of a <see cref="PrivateResolver"/>; removed on Dispose.</summary>
public sealed class PrivateResolverFiles : IDisposable
{
    private const UnixFileMode File0644 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode Dir0755 = File0644 | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    public static string Root => Path.Combine(Journal.StateDirectory, "dns");

    public string Directory { get; }

    public IReadOnlyList<BindMount> Mounts { get; }

    private PrivateResolverFiles(string directory, IReadOnlyList<BindMount> mounts)
    {
        Directory = directory;
        Mounts = mounts;
    }

    internal static PrivateResolverFiles Create(PrivateResolver r)
    {
        SweepLeftovers();
        string dir = Path.Combine(Root, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        var files = new PrivateResolverFiles(dir, MountsOf(r, dir));
        try
        {
            System.IO.Directory.CreateDirectory(Root, Dir0755);
            if (System.IO.Directory.Exists(dir)) System.IO.Directory.Delete(dir, recursive: true);
            System.IO.Directory.CreateDirectory(dir, Dir0755);
            WriteFile(Path.Combine(dir, "resolv.conf"), r.ResolvConf);
            if (r.NsSwitch is { } ns) WriteFile(Path.Combine(dir, "nsswitch.conf"), ns);
            if (r.NscdDirectory is not null) System.IO.Directory.CreateDirectory(Path.Combine(dir, "nscd"), Dir0755);
            // Modes exactly, whatever via's umask: the program may run as another user and must read them.
            File.SetUnixFileMode(dir, Dir0755);
            foreach (var m in files.Mounts) File.SetUnixFileMode(m.Source, System.IO.Directory.Exists(m.Source) ? Dir0755 : File0644);
            return files;
        }
        catch
        {
            files.Dispose();
            throw;
        }
    }

    private static List<BindMount> MountsOf(PrivateResolver r, string dir)
    {
        var mounts = new List<BindMount> { new(Path.Combine(dir, "resolv.conf"), HostResolver.ResolvConfPath) };
        if (r.NsSwitch is not null) mounts.Add(new(Path.Combine(dir, "nsswitch.conf"), HostResolver.NsSwitchPath));
        if (r.NscdDirectory is { } nscd) mounts.Add(new(Path.Combine(dir, "nscd"), nscd));
        return mounts;
    }

    private static void WriteFile(string path, string text)
    {
        using var f = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = File0644 });
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        f.Write(bytes);
    }

    /// <summary>Directories of via processes that no longer exist (killed before they could remove them).</summary>
    private static void SweepLeftovers()
    {
        if (!System.IO.Directory.Exists(Root)) return;
        foreach (var d in System.IO.Directory.GetDirectories(Root))
        {
            if (int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && !System.IO.Directory.Exists($"/proc/{pid}"))
            {
                try { System.IO.Directory.Delete(d, recursive: true); }
                catch (IOException) { }
            }
        }
    }

    public void Dispose()
    {
        try
        {
            if (System.IO.Directory.Exists(Directory)) System.IO.Directory.Delete(Directory, recursive: true);
            // The last user removes dns/ itself, so the state directory looks as it did (another via may race: harmless).
            if (System.IO.Directory.Exists(Root) && !System.IO.Directory.EnumerateFileSystemEntries(Root).Any()) System.IO.Directory.Delete(Root);
        }
        catch (IOException) { }
    }
}
