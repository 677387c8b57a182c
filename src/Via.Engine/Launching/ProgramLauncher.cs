using Via.Kernel;
using Via.Kernel.Processes;

namespace Via.Engine.Launching;

/// <summary>
/// Carries out a <see cref="LaunchSpec"/>. Fast path: the program is born in the route's cgroup
/// (clone3 with CLONE_INTO_CGROUP, Native/via_spawn.c). On kernels without it (before 5.7), or with
/// VIA_LAUNCHER=stage (tests), via starts itself as the launcher stage (<see cref="LaunchStage"/>),
/// which reads the same spec from its arguments, moves itself into the cgroup, and execs.
/// </summary>
public static class ProgramLauncher
{
    /// <summary>Starts the program; failures before it ran are said through <paramref name="say"/> and answered in <see cref="StartedProgram.FailedStatus"/>.</summary>
    public static StartedProgram Start(LaunchSpec spec, string path, string[] command, Action<string> say)
    {
        var environment = spec.Environment.Select(e => $"{e.Key}={e.Value}").ToList();
        bool useStage = Environment.GetEnvironmentVariable("VIA_LAUNCHER") == "stage";
        if (!useStage && Spawn.TryStart(spec.Cgroup, path, command, environment, spec.User, spec.Mounts, spec.SeccompListener, networkNamespace: spec.NetworkNamespace, join: spec.JoinCgroups) is { } started)
        {
            int? failed = started.FailedAt switch
            {
                Spawn.Stage.None => null,
                Spawn.Stage.Exec when started.Errno == Errno.ENOENT => Fail(say, $"{command[0]}: command not found", ExitCodes.NotFound),
                Spawn.Stage.Exec => Fail(say, $"{command[0]}: cannot execute: {new KernelException("execve", path, started.Errno).Message}", ExitCodes.CannotExecute),
                Spawn.Stage.Mounts => Fail(say, $"could not give the program its own resolver files: {Spawn.MountFailure(spec.Mounts, started.FailedMount, started.Errno).Message}"),
                Spawn.Stage.Credentials => Fail(say, $"cannot run the program as {spec.User?.Describe()}: {new KernelException("setresuid", spec.User?.Name ?? "", started.Errno).Message}"),
                Spawn.Stage.NetworkNamespace => Fail(say, $"could not enter the program's network namespace: {new KernelException("setns(CLONE_NEWNET)", spec.NetworkNamespace ?? "", started.Errno).Message}"),
                Spawn.Stage.SeccompFilter => Fail(say, $"could not install the seccomp filter: {new KernelException("seccomp(SECCOMP_SET_MODE_FILTER)", "SECCOMP_FILTER_FLAG_NEW_LISTENER", started.Errno).Message}"),
                Spawn.Stage.JoinCgroup => Fail(say, $"could not place the program: {new KernelException("write 0 to", Path.Combine(spec.JoinCgroups?.ElementAtOrDefault(started.FailedMount) ?? "?", "cgroup.procs"), started.Errno).Message}"),
                _ => Fail(say, $"the program could not be started (stage {started.FailedAt})"),
            };
            if (failed is { } status) Spawn.Wait(started.Pid);
            return new StartedProgram(started.Pid, started.SeccompListener) { FailedStatus = failed };
        }

        // The launcher stage: this same binary, started without CLONE_INTO_CGROUP, given the spec as arguments.
        // (A seccomp listener is handed over by the clone3 child only; seccomp user notification with
        // ADDFD needs Linux 5.14, which has clone3 into a cgroup anyway.)
        if (spec.SeccompListener)
            throw new ViaException("the seccomp method needs clone3 into a cgroup (Linux 5.7 or later), which this launch could not use");
        var stage = new List<string> { Environment.ProcessPath ?? "/proc/self/exe" };
        LaunchStage.AddArguments(stage, spec, path, command);
        var plain = Spawn.TryStart(null, stage[0], stage, environment, null, [])
            ?? throw new ViaException("this kernel cannot start a process with clone3 (Linux 5.3 or later is needed)");
        return new StartedProgram(plain.Pid, null) { ThroughStage = true };
    }

    /// <summary>Waits for the program; its exit status, or 128 + N if signal N killed it (as a shell reports it).</summary>
    public static int Wait(StartedProgram program) => program.FailedStatus ?? Spawn.Wait(program.Pid);

    private static int Fail(Action<string> say, string message, int status = ExitCodes.ViaFailed)
    {
        say(message);
        return status;
    }
}
