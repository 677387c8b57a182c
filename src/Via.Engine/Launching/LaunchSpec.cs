using Microsoft.Win32.SafeHandles;
using Via.Kernel.Processes;

namespace Via.Engine.Launching;

/// <summary>
/// Everything a program gets before its first instruction, as root, in this order: born in
/// <see cref="Cgroup"/>; <see cref="NetworkNamespace"/>; its own mount namespace with <see cref="Mounts"/>; the seccomp filter (with
/// <see cref="SeccompListener"/>); then <see cref="User"/>'s credentials; then execve with
/// <see cref="Environment"/>. One description, carried out by one piece of code
/// (<see cref="ProgramLauncher"/>: the clone3 child, or the launcher stage on kernels without clone3
/// into a cgroup, which reads the same spec from its arguments).
/// </summary>
/// <param name="Cgroup">The route's cgroup (a path as seen from here).</param>
/// <param name="User">Whom to run as; null keeps via's own identity (root).</param>
/// <param name="Environment">The program's whole environment.</param>
/// <param name="Mounts">Bind mounts in a mount namespace of the program's own (its resolver files); none: via's.</param>
/// <param name="SeccompListener">Install via's seccomp user-notification filter and return its listener.</param>
/// <param name="NetworkNamespace">A network namespace file to enter first, before the mounts (the netns mechanism's); null: via's.</param>
/// <param name="JoinCgroups">cgroup v1 directories the program joins first, as root (the netcls mechanism's net_cls cgroup).</param>
public sealed record LaunchSpec(
    string Cgroup,
    Credentials? User,
    IReadOnlyDictionary<string, string> Environment,
    IReadOnlyList<BindMount> Mounts,
    bool SeccompListener = false,
    string? NetworkNamespace = null,
    IReadOnlyList<string>? JoinCgroups = null);

/// <summary>A started program: its pid (to wait for and signal) and, if asked for, the seccomp listener.</summary>
public sealed record StartedProgram(int Pid, SafeFileHandle? SeccompListener)
{
    /// <summary>Set when the child failed before the program ran: the exit status via answers with (the reason was said).</summary>
    public int? FailedStatus { get; init; }

    /// <summary>Started through the launcher stage, which makes the program's private mounts after
    /// <see cref="ProgramLauncher.Start"/> has returned: their sources must stay until it is done.</summary>
    public bool ThroughStage { get; init; }
}
