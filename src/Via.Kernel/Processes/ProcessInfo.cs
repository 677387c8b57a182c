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
