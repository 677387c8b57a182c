using System.Collections.Concurrent;
using System.Globalization;
using Via.Kernel;
using Via.Kernel.Cgroups;
using Via.Kernel.Processes;
using Via.Mechanisms.Cgroup;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Seccomp;

/// <summary>
/// Tags sockets through seccomp user notification: the launch installs a filter
/// (src/Via.Kernel/Native/seccomp_filter.h) that sends each socket(AF_INET|AF_INET6) of the program
/// and its descendants to a supervisor, bin/via-seccomp (via_seccomp.c), which creates the socket,
/// marks it and installs it in the caller. No cgroup eBPF is needed for the tag, so it works where
/// that is not allowed (inside containers), for static binaries and for unprivileged programs.
/// <list type="bullet">
/// <item>The supervisor lives in the route's membership cgroup, so its sockets carry the route's
/// cgroup (the egress guard applies to them) and the route stays populated while it serves; it
/// exits when the last filtered task is gone.</item>
/// <item>It makes the sockets with the program's uid, gid and groups (so their owner, what
/// <c>-m owner</c> and nft <c>skuid</c> match, is the program's user, and the kernel's checks at
/// socket() are the program's), keeping CAP_NET_ADMIN only, for SO_MARK.</item>
/// <item>Fail closed: via keeps no copy of the listener; if the supervisor dies, the kernel answers
/// the program's socket() with ENOSYS.</item>
/// <item>The filter refuses SO_MARK, SO_BINDTODEVICE and SO_BINDTOIFINDEX, new network namespaces,
/// io_uring (ENOSYS: IORING_OP_SOCKET would make sockets past it) and clone3 (ENOSYS: its flags
/// cannot be read by a filter; libcs fall back to clone).</item>
/// </list>
/// It needs the clone3 launch (the filter is installed by native code between clone3 and execve).
/// </summary>
public sealed class SeccompMechanism : IMechanism
{
    /// <summary>The supervisor's file name, next to the via binary.</summary>
    public const string SupervisorName = "via-seccomp";

    public string Name => "seccomp";

    public string Summary => "a supervisor (via-seccomp) makes each IPv4/IPv6 socket of the program, marked, through seccomp user notification";

    public bool TagsAtCreation => true;

    /// <summary>No: where cgroup eBPF is refused (inside containers) the route goes without the egress guard.</summary>
    public bool NeedsCgroupBpf => false;

    /// <summary>bin/via-seccomp, beside the running via (null when via's own path is unknown).</summary>
    public static string? SupervisorPath =>
        Environment.ProcessPath is { } self && Path.GetDirectoryName(self) is { } dir ? Path.Combine(dir, SupervisorName) : null;

    public MechanismProbe Probe(HostView host)
    {
        var kernel = SeccompNotify.KernelVersion();
        if (SeccompNotify.Unavailable(kernel) is { } why) return new MechanismProbe(false, why);
        string? supervisor = SupervisorPath;
        if (supervisor is null || !File.Exists(supervisor))
            return new MechanismProbe(false, $"the supervisor {supervisor ?? SupervisorName} is missing: build with 'dotnet publish src/Via.Cli -c Release -o bin', which puts it next to via");
        return new MechanismProbe(true, $"seccomp user notification with ADDFD_FLAG_SEND (kernel {kernel}); supervisor {supervisor}");
    }

    /// <summary>
    /// For doctor (as root): starts /bin/true with the filter, as a run would, and checks the
    /// listener comes back (no supervisor answers it; true opens no socket). Catches a kernel or a
    /// container's own filter that refuses via's.
    /// </summary>
    public string? Verify(HostView host)
    {
        string? program = new[] { "/bin/true", "/usr/bin/true" }.FirstOrDefault(File.Exists);
        if (program is null) return null; // nothing harmless to start: the probe's answer stands
        try
        {
            var started = Spawn.TryStart(null, program, [program], [], who: null, seccompListener: true);
            if (started is null) return "this kernel or build has no clone3 launch, which the seccomp filter needs";
            using var listener = started.SeccompListener;
            Spawn.Wait(started.Pid);
            if (started.FailedAt == Spawn.Stage.SeccompFilter)
                return new KernelException("seccomp(SECCOMP_SET_MODE_FILTER)", "SECCOMP_FILTER_FLAG_NEW_LISTENER", started.Errno).Message;
            if (started.FailedAt != Spawn.Stage.None) return $"a test program with the filter could not start (stage {started.FailedAt}, errno {started.Errno})";
            if (listener is null) return "the seccomp filter gave no listener";
        }
        catch (KernelException e)
        {
            return e.Message;
        }
        return null;
    }

    public IReadOnlyList<HostChange> Tag(TagRequest request) => [];

    public LaunchAdditions Launch(TagRequest request) => new(new Dictionary<string, string>(), SeccompListener: true);

    /// <summary>The supervisor of each running program (by the program's pid), until <see cref="Finished"/>.</summary>
    private readonly ConcurrentDictionary<int, ChildProcess> _supervisors = new();

    /// <summary>How long <see cref="Finished"/> waits for a supervisor whose program has no descendants left.</summary>
    private static readonly TimeSpan SupervisorExit = TimeSpan.FromSeconds(1);

    /// <summary>Starts the supervisor with the program's listener, in the route's cgroup. Throws (the
    /// engine then kills the program, whose socket() meanwhile waits) when it cannot. via's copy of
    /// the listener is closed here either way, so that the supervisor's is the only one: if it dies,
    /// the program's socket() fails (ENOSYS) instead of waiting for an answer.</summary>
    public void Started(TagRequest request, LaunchedProgram program)
    {
        using var listener = program.SeccompListener
            ?? throw new InvalidOperationException("the program was started without the seccomp filter (only the clone3 launch installs it)");
        string supervisor = SupervisorPath is { } p && File.Exists(p) ? p : throw new InvalidOperationException($"the seccomp supervisor {SupervisorPath ?? SupervisorName} is missing");
        var who = program.User;
        static string S(uint v) => v.ToString(CultureInfo.InvariantCulture);
        List<string> argv = [supervisor, S((uint)listener.DangerousGetHandle()), "0x" + request.Mark.ToString("x", CultureInfo.InvariantCulture),
            S(who?.Uid ?? 0), S(who?.Gid ?? 0), .. (who?.Groups ?? []).Select(S)];
        // As root (it takes the program's identity itself, keeping CAP_NET_ADMIN for SO_MARK).
        var started = Spawn.TryStart(CgroupPaths.Resolve(request.Cgroup), supervisor, argv, [], who: null, inherit: listener)
            ?? throw new InvalidOperationException("cannot start the seccomp supervisor: this kernel or build has no clone3 launch");
        if (started.FailedAt != Spawn.Stage.None)
        {
            Spawn.Wait(started.Pid);
            throw new KernelException("execve", supervisor, started.Errno);
        }
        // Not waited for by the engine: it exits when the program and all its descendants have
        // (daemons may outlive via). Finished reaps it when it goes with the program.
        _supervisors[program.Pid] = ChildProcess.Open(started.Pid);
    }

    /// <summary>
    /// The program has exited. If nothing but its supervisor is left in the route's cgroup, waits
    /// (bounded) for the supervisor, which exits as soon as it sees its filter unused, so that the
    /// engine finds the route empty and removes it at once. If daemons remain, returns at once: the
    /// supervisor serves them, and the engine's reaper removes the route after them.
    /// </summary>
    public void Finished(TagRequest request, LaunchedProgram program)
    {
        if (!_supervisors.TryRemove(program.Pid, out var supervisor)) return;
        using (supervisor)
        {
            string? cgroup = CgroupPaths.TryResolve(request.Cgroup, mayMount: false);
            if (cgroup is null) return;
            var members = Cgroup2.Processes(cgroup);
            if (members.Any(pid => pid != supervisor.Pid)) return;
            supervisor.WaitForExit(SupervisorExit);
        }
    }
}
