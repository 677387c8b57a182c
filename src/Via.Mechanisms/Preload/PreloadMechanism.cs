using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Preload;

/// <summary>
/// LD_PRELOAD, done right (App-Route-Jail's idea): <c>via_preload.so</c> (via_preload.c),
/// loaded into the program, sends every AF_INET/AF_INET6 socket the program makes through libc's
/// <c>socket()</c> to the route's tagger (<see cref="StartTagger"/>, run as root), which marks it
/// before <c>socket()</c> returns; so the program may be unprivileged, and a socket that cannot be
/// tagged is an error (EACCES), never an untagged socket. The library keeps its configuration
/// from its start, and puts LD_PRELOAD and the tagger's address back into the environment of the
/// programs it execs.
///
/// What preload cannot reach: sockets made by raw system calls (Go), inside libc where calls are
/// not interposable (glibc's own DNS resolver), by static and set-id children (the loader ignores
/// LD_PRELOAD in them). The program still runs in the route's cgroup with the egress guard (the
/// engine's, for every mechanism): their packets carry no mark, take the main table, and are
/// dropped if that is not IFACE. Fail closed, not routed. A static or set-id program itself is
/// refused up front.
/// </summary>
public sealed class PreloadMechanism : IMechanism
{
    public const string LibraryName = "via_preload.so", TaggerName = "via-tagger";

    /// <summary>The variable that names the tagger's abstract address for the library.</summary>
    public const string TaggerVariable = "VIA_PRELOAD_TAGGER";

    public string Name => "preload";

    public string Summary => "LD_PRELOAD library; a root tagger marks each inet socket at creation (dynamic programs only)";

    public bool TagsAtCreation => true;

    /// <summary>Where via's own files are: the directory of bin/via.</summary>
    public static string Directory => Path.GetDirectoryName(Environment.ProcessPath ?? AppContext.BaseDirectory) ?? AppContext.BaseDirectory;

    public static string LibraryPath => Path.Combine(Directory, LibraryName);

    public static string TaggerPath => Path.Combine(Directory, TaggerName);

    public MechanismProbe Probe(HostView host)
    {
        if (!File.Exists(LibraryPath)) return new(false, $"{LibraryPath} is missing (built next to via by 'dotnet publish src/Via.Cli -c Release -o bin')");
        if (!File.Exists(TaggerPath)) return new(false, $"{TaggerPath} is missing (built next to via by 'dotnet publish src/Via.Cli -c Release -o bin')");
        // ld.so splits LD_PRELOAD at spaces and colons.
        if (LibraryPath.AsSpan().IndexOfAny(' ', ':') >= 0) return new(false, $"{LibraryPath}: LD_PRELOAD cannot name a path with a space or a colon");
        // A program run as another user (--user, sudo's invoking user) must be able to load it: else
        // ld.so says so on the program's stderr and runs it without (the egress guard then refuses its packets).
        if (NotReadableByAll(LibraryPath) is { } closed) return new(false, $"{closed} is not readable by every user, so a program run as another user could not load {LibraryName}");
        return new(true, $"{LibraryPath} and {TaggerPath}");
    }

    /// <summary>The first of the file and its directories that others cannot read (or search), or null.</summary>
    private static string? NotReadableByAll(string file)
    {
        if ((File.GetUnixFileMode(file) & UnixFileMode.OtherRead) == 0) return file;
        for (string? dir = Path.GetDirectoryName(file); !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
            if ((File.GetUnixFileMode(dir) & UnixFileMode.OtherExecute) == 0) return dir;
        return null;
    }

    public string? Refuse(ProgramImage program) =>
        program.Static ? $"{program.Path} is statically linked: LD_PRELOAD cannot reach it; use --method cgroup or seccomp"
        : program.SetId ? $"{program.Path} is set-user-ID or set-group-ID: the loader ignores LD_PRELOAD for it; use --method cgroup or seccomp"
        : ProgramFile.Kind(program.Path) is { } kind && ProgramFile.Kind(LibraryPath) is { } ours && kind != ours
            ? $"{program.Path} is built for another architecture or word size than {LibraryName}: the loader would not preload it; use --method cgroup or seccomp"
        : ProgramFile.IsGo(program.Path)
            ? $"{program.Path} is a Go program: it makes its sockets with system calls of its own, which LD_PRELOAD cannot see; use --method cgroup or seccomp"
        : null;

    public IReadOnlyList<HostChange> Tag(TagRequest request) =>
        [new StartTagger(request.RouteId, StartTagger.AddressOf(request.RouteId), RouteCgroups.BelowRoot(request.Host, request.Cgroup), request.Cgroup, request.Mark)];

    public LaunchAdditions Launch(TagRequest request)
    {
        // Prepended: a program's own preloads keep working after ours.
        string? existing = Environment.GetEnvironmentVariable("LD_PRELOAD");
        return new(new Dictionary<string, string>
        {
            ["LD_PRELOAD"] = string.IsNullOrEmpty(existing) ? LibraryPath : LibraryPath + ":" + existing,
            [TaggerVariable] = StartTagger.AddressOf(request.RouteId),
        });
    }

    public IReadOnlyList<ChangeCodec> ChangeKinds => [StartTagger.Codec];

    /// <summary>
    /// Stops taggers whose route no journal knows (a via killed between starting one and writing
    /// nothing more cannot happen: the journal has the change first; but a wiped state directory
    /// can). Only where this state directory's journals account for every route of its cgroup
    /// subtree (<see cref="Journal.OwnsCgroupSubtree"/>), and only taggers of routes in that subtree
    /// (their --cgroup): a tagger of another state directory's route (tests, each with a subtree of
    /// its own) is not ours to judge. A tagger also exits by itself within two seconds of its
    /// route's cgroup being removed, which gc does.
    /// </summary>
    public IEnumerable<Collector.Removal> Sweep(IReadOnlyList<ActiveRoute> known, bool dryRun)
    {
        if (!Journal.OwnsCgroupSubtree) yield break;
        var ids = known.Select(r => r.Id).ToHashSet(StringComparer.Ordinal);
        string ours = "/" + RouteCgroups.Subtree + "/";
        foreach (var (pid, address) in StartTagger.Running())
        {
            if (StartTagger.RouteOf(address) is not { } id || ids.Contains(id)) continue;
            if (StartTagger.CgroupOf(pid) is not { } cgroup || !cgroup.StartsWith(ours, StringComparison.Ordinal)) continue;
            bool stopped = dryRun || StartTagger.Stop(pid);
            yield return new Collector.Removal($"tagger {address} (pid {pid})", "no journal", stopped ? [] : [$"pid {pid} did not exit"]);
        }
    }
}
