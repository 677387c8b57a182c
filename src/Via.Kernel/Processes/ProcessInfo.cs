using System.Globalization;

namespace Via.Kernel.Processes;

/// <summary>A process as /proc shows it: its pid, real user and command line.</summary>
public sealed record ProcessInfo(int Pid, uint Uid, string User, string Command)
{
    /// <summary>Reads /proc/PID; null if the process is gone.</summary>
    public static ProcessInfo? Read(int pid)
    {
        try
        {
            string dir = $"/proc/{pid}";
            uint uid = 0;
            foreach (var line in File.ReadLines(Path.Combine(dir, "status")))
            {
                if (!line.StartsWith("Uid:", StringComparison.Ordinal)) continue;
                uid = uint.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
                break;
            }
            string command = File.ReadAllText(Path.Combine(dir, "cmdline")).TrimEnd('\0').Replace('\0', ' ');
            if (command.Length == 0) command = "[" + File.ReadAllText(Path.Combine(dir, "comm")).Trim() + "]";
            string user = Credentials.Lookup(uid.ToString(CultureInfo.InvariantCulture))?.Name ?? uid.ToString(CultureInfo.InvariantCulture);
            return new ProcessInfo(pid, uid, user, command);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }
}

/// <summary>
/// A process named so that a recycled pid is not mistaken for it: its pid and its start time
/// (clock ticks since boot, field 22 of /proc/PID/stat).
/// </summary>
public readonly record struct ProcessIdentity(int Pid, ulong StartTime)
{
    public static ProcessIdentity Self { get; } = Of(Environment.ProcessId) ?? new(Environment.ProcessId, 0);

    /// <summary>The process now running as <paramref name="pid"/>; null if none.</summary>
    public static ProcessIdentity? Of(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return new ProcessIdentity(pid, ulong.Parse(fields[19], CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>True while this very process lives (same pid and start time).</summary>
    public bool IsAlive => Pid > 0 && Of(Pid) is { } now && now.StartTime == StartTime;
}
