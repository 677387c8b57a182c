using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Via.Kernel.Processes;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Preload;

/// <summary>
/// The route's tagger (<c>bin/via-tagger</c>, via_tagger.c): a root process, outside the
/// route's cgroup, listening on the abstract Unix address <paramref name="Address"/> of via's
/// network namespace, that puts <paramref name="Mark"/> on the sockets the preload library sends it
/// from processes in <paramref name="Cgroup"/> (as /proc/PID/cgroup shows it: the path below the
/// cgroup2 root) or below it, and exits by itself when <paramref name="CgroupDirectory"/> is gone.
/// It is found again by its address, not by a pid: the journal holds this change before the tagger
/// runs, so a via killed in between leaves nothing another via cannot find and stop.
/// </summary>
public sealed record StartTagger(string RouteId, string Address, string Cgroup, string CgroupDirectory, uint Mark) : HostChange
{
    public const string KindName = "preload-tagger";

    /// <summary>What <c>ps</c> and /proc/PID/comm show for a tagger.</summary>
    public const string ProcessName = "via-tagger";

    public static readonly ChangeCodec Codec = new(KindName, Read);

    public override string Kind => KindName;

    public override string Command =>
        $"{ProcessName} --name {Address} --cgroup {Cgroup} --cgroup-dir {CgroupDirectory} --mark 0x{Mark:x}";

    public override string UndoCommand => $"kill $(pgrep -f '^\\S*{ProcessName} --name {Address} ')";

    public override void Apply(Host host)
    {
        string program = PreloadMechanism.TaggerPath;
        var start = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (var a in new[] { "--name", Address, "--cgroup", Cgroup, "--cgroup-dir", CgroupDirectory, "--mark", "0x" + Mark.ToString("x", CultureInfo.InvariantCulture) })
            start.ArgumentList.Add(a);
        using var tagger = Process.Start(start) ?? throw new IOException($"could not start {program}");
        // It prints the pid of the process that serves, once that one listens, and exits.
        string line = tagger.StandardOutput.ReadToEnd().Trim();
        tagger.WaitForExit();
        if (tagger.ExitCode != 0 || !int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            throw new IOException($"the tagger of route {RouteId} did not start ({(line.Length > 0 ? line : "exit " + tagger.ExitCode)}); 'via gc' removes a stale one");
    }

    public override bool Undo(Host host)
    {
        bool stopped = false;
        foreach (var (pid, address) in Running())
            if (address == Address) stopped |= Stop(pid);
        return stopped;
    }

    public override void Write(Utf8JsonWriter w)
    {
        w.WriteString("route", RouteId);
        w.WriteString("address", Address);
        w.WriteString("cgroup", Cgroup);
        w.WriteString("cgroupDirectory", CgroupDirectory);
        w.WriteNumber("mark", Mark);
    }

    private static StartTagger Read(JsonElement o) => new(
        o.GetProperty("route").GetString()!,
        o.GetProperty("address").GetString()!,
        o.GetProperty("cgroup").GetString()!,
        o.GetProperty("cgroupDirectory").GetString()!,
        o.GetProperty("mark").GetUInt32());

    /// <summary>The address of a route's tagger.</summary>
    public static string AddressOf(string routeId) => ProcessName + "/" + routeId;

    /// <summary>The route id in a tagger's address, or null if it is not one of via's.</summary>
    public static string? RouteOf(string address) =>
        address.StartsWith(ProcessName + "/", StringComparison.Ordinal) ? address[(ProcessName.Length + 1)..] : null;

    /// <summary>
    /// Taggers running on this host (any network namespace), with their addresses: root processes
    /// named via-tagger with a --name argument. One pass over /proc, reading comm, and cmdline only
    /// for a match.
    /// </summary>
    public static IEnumerable<(int Pid, string Address)> Running()
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
            string[] argv;
            try
            {
                if (File.ReadAllText(dir + "/comm").TrimEnd('\n') != ProcessName) continue;
                argv = File.ReadAllText(dir + "/cmdline").Split('\0');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // gone meanwhile
            }
            int i = Array.IndexOf(argv, "--name");
            if (i < 0 || i + 1 >= argv.Length) continue;
            if (ProcessInfo.Read(pid) is not { Uid: 0 }) continue; // only root's: anyone may name a program via-tagger
            yield return (pid, argv[i + 1]);
        }
    }

    /// <summary>The route cgroup a running tagger serves (its --cgroup: the path below the cgroup2 root, /via/t22000), or null.</summary>
    public static string? CgroupOf(int pid)
    {
        string[] argv;
        try { argv = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0'); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        int i = Array.IndexOf(argv, "--cgroup");
        return i < 0 || i + 1 >= argv.Length ? null : argv[i + 1];
    }

    /// <summary>SIGTERM, then SIGKILL if it has not exited within 2 s; true once it is gone.</summary>
    public static bool Stop(int pid)
    {
        if (ProcessIdentity.Of(pid) is not { } who) return false;
        Exec.Signal(pid, 15);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(2);
        while (Lives(who))
        {
            if (DateTime.UtcNow > deadline)
            {
                Exec.Signal(pid, 9);
                deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
                while (Lives(who) && DateTime.UtcNow < deadline) Thread.Sleep(5);
                return !Lives(who);
            }
            Thread.Sleep(2);
        }
        return true;
    }

    /// <summary>True while the process runs (a zombie, whose parent has not reaped it yet, does not).</summary>
    private static bool Lives(ProcessIdentity who)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{who.Pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields[0] != "Z" && fields[0] != "X" && ulong.Parse(fields[19], CultureInfo.InvariantCulture) == who.StartTime;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return false;
        }
    }
}
