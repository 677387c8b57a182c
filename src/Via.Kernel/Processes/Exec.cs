using System.Runtime.InteropServices;
using Via.Kernel.Interop;

namespace Via.Kernel.Processes;

/// <summary>The last steps of a launch, in the launcher process: credentials, signal state, execve.</summary>
public static unsafe class Exec
{
    /// <summary>setgroups, setresgid, setresuid, in that order (groups and gid need root still).</summary>
    public static void DropTo(Credentials who)
    {
        fixed (uint* groups = who.Groups)
        {
            if (Libc.setgroups((nuint)who.Groups.Length, groups) < 0) throw Errno.Last("setgroups", who.Describe());
        }
        if (Libc.setresgid(who.Gid, who.Gid, who.Gid) < 0) throw Errno.Last("setresgid", who.Describe());
        if (Libc.setresuid(who.Uid, who.Uid, who.Uid) < 0) throw Errno.Last("setresuid", who.Describe());
    }

    /// <summary>
    /// Restores what a program expects to inherit: the .NET runtime ignores SIGPIPE, and an ignored
    /// signal stays ignored across execve; the signal mask is inherited too.
    /// </summary>
    public static void ResetSignals()
    {
        Libc.signal(Libc.SIGPIPE, 0 /* SIG_DFL */);
        ulong empty = 0;
        Libc.sigprocmask(Libc.SIG_SETMASK, &empty, null);
    }

    /// <summary>execvp(file, argv). Returns errno; only returns on failure.</summary>
    public static int Replace(string file, IReadOnlyList<string> argv)
    {
        using var args = new NativeStrings(argv);
        using var path = new NativeStrings([file]);
        Libc.execvp(path.Pointer[0], args.Pointer);
        return Marshal.GetLastPInvokeError();
    }

    /// <summary>The command as execvp would find it on PATH, or null; also reports whether it was found but not executable.</summary>
    public static string? Resolve(string command, out bool foundNotExecutable)
    {
        foundNotExecutable = false;
        IEnumerable<string> candidates = command.Contains('/')
            ? [command]
            : (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin")
                .Split(':').Select(dir => Path.Combine(dir.Length == 0 ? "." : dir, command));
        foreach (var c in candidates)
        {
            if (!File.Exists(c)) continue;
            if ((File.GetUnixFileMode(c) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0) return c;
            foundNotExecutable = true;
        }
        return null;
    }

    public static void Signal(int pid, int signal) => Libc.kill(pid, signal);

    public static bool IsRoot => Libc.geteuid() == 0;

    /// <summary>
    /// True when our standard input is a terminal whose foreground process group is ours: keys like
    /// Ctrl-C then signal the whole group, the program included, without our help.
    /// </summary>
    public static bool InTerminalForeground => Libc.isatty(0) == 1 && Libc.tcgetpgrp(0) == Libc.getpgrp();

    /// <summary>Starts a new session (detaches from the terminal's process group).</summary>
    public static void NewSession() => Libc.setsid();
}
