using System.Globalization;
using Via.Kernel;
using Via.Kernel.Cgroups;
using Via.Kernel.Processes;
namespace Via.Engine.Launching;

/// <summary>
/// The launcher stage: via re-executes itself as <c>via __launch</c>, and this process moves
/// itself into the route's cgroup, takes the user's credentials, restores default signal state
/// and only then execs the program. No managed code runs between fork and exec, and the program's
/// first instruction already runs tagged, so it can never create an untagged socket.
/// </summary>
public static class LaunchStage
{
    public const string Verb = "__launch";

    /// <summary>The spec as the stage's arguments (its environment is the process's own).</summary>
    public static void AddArguments(IList<string> args, LaunchSpec spec, string path, string[] command)
    {
        var who = spec.User;
        args.Add(Verb);
        args.Add("--cgroup"); args.Add(spec.Cgroup);
        if (spec.NetworkNamespace is not null) { args.Add("--netns"); args.Add(spec.NetworkNamespace); }
        foreach (var dir in spec.JoinCgroups ?? []) { args.Add("--join"); args.Add(dir); }
        // Read before main by the native part (via_spawn.c, via_launch_premain), which makes them.
        foreach (var m in spec.Mounts)
        {
            args.Add("--mount-from"); args.Add(m.Source);
            args.Add("--mount-on"); args.Add(m.Target);
        }
        if (who is not null)
        {
            args.Add("--uid"); args.Add(who.Uid.ToString(CultureInfo.InvariantCulture));
            args.Add("--gid"); args.Add(who.Gid.ToString(CultureInfo.InvariantCulture));
            args.Add("--groups"); args.Add(string.Join(',', who.Groups));
        }
        args.Add("--");
        args.Add(path);
        foreach (var a in command) args.Add(a);
    }

    public static int Run(ReadOnlySpan<string> args)
    {
        string? cgroup = null, netns = null;
        uint? uid = null, gid = null;
        uint[] groups = [];
        var mounts = new List<BindMount>();
        var join = new List<string>();
        string? mountFrom = null;
        int i = 0;
        for (; i < args.Length && args[i] != "--"; i += 2)
        {
            if (i + 1 >= args.Length) return Error($"launcher: option {args[i]} needs a value");
            string value = args[i + 1];
            switch (args[i])
            {
                case "--cgroup": cgroup = value; break;
                case "--netns": netns = value; break;
                case "--join": join.Add(value); break;
                case "--mount-from": mountFrom = value; break;
                case "--mount-on" when mountFrom is not null: mounts.Add(new BindMount(mountFrom, value)); mountFrom = null; break;
                case "--uid": uid = uint.Parse(value, CultureInfo.InvariantCulture); break;
                case "--gid": gid = uint.Parse(value, CultureInfo.InvariantCulture); break;
                case "--groups": groups = value.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(g => uint.Parse(g, CultureInfo.InvariantCulture)).ToArray(); break;
                default: return Error($"launcher: unknown option {args[i]}");
            }
        }
        if (i + 1 >= args.Length) return Error("launcher: no command");
        string path = args[i + 1];
        string[] argv = args[(i + 2)..].ToArray();
        if (argv.Length == 0) argv = [path];

        try
        {
            Spawn.CheckLauncherMounts(mounts);
        }
        catch (Exception e) when (e is KernelException or InvalidOperationException)
        {
            return Error($"could not give the program its own resolver files: {e.Message}");
        }
        try
        {
            foreach (string dir in join) JoinV1(dir);
            if (cgroup is not null) Cgroup2.JoinSelf(cgroup);
            // This thread only; it is the one that execs, and the program keeps its namespace.
            if (netns is not null) Namespaces.EnterNetwork(netns);
            if (uid is { } u) Exec.DropTo(new Credentials(u, gid ?? u, groups.Length > 0 ? groups : [gid ?? u], u.ToString(CultureInfo.InvariantCulture), "/"));
        }
        catch (KernelException e)
        {
            return Error($"cannot place the program: {e.Message}");
        }
        Exec.ResetSignals();
        int errno = Exec.Replace(path, argv);
        return errno == Errno.ENOENT
            ? Error($"{argv[0]}: command not found", ExitCodes.NotFound)
            : Error($"{argv[0]}: cannot execute: {new KernelException("execve", path, errno).Message}", ExitCodes.CannotExecute);
    }

    /// <summary>Moves this process into a cgroup v1 directory (e.g. net_cls): "0" in its cgroup.procs is the writer.</summary>
    private static void JoinV1(string dir)
    {
        string procs = Path.Combine(dir, "cgroup.procs");
        try { File.WriteAllText(procs, "0"); }
        catch (IOException e) { throw new KernelException("write 0 to", procs, e.HResult & 0xffff, e.Message); }
        catch (UnauthorizedAccessException) { throw new KernelException("write 0 to", procs, Errno.EACCES); }
    }

    private static int Error(string message, int code = ExitCodes.ViaFailed)
    {
        Console.Error.WriteLine("via: " + message);
        return code;
    }
}
