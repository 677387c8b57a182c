using System.Collections.Concurrent;
using System.Globalization;
using Via.Cli.Commands.Demo;
using Via.Kernel.Cgroups;

namespace Via.Tests.Kernel;

/// <summary>
/// One kernel test class's own via, apart from /run/via, from the "via" cgroup subtree and from
/// every other class (of this run or of another worktree's run at the same time): its state
/// directory /run/via-test-CLASS-PID (VIA_STATE_DIR), its cgroup subtree via-test-CLASS-PID
/// (VIA_CGROUP_SUBTREE, so that 'via gc' there sweeps it) and its range of tables (VIA_CONFIG, a
/// via.conf in the state directory). Disposing removes all of it, even after a failed test: what
/// is left in its cgroups is killed, the cgroups removed, then the state directory.
/// </summary>
public class ClassState : IDisposable
{
    /// <summary>
    /// The tables of each class, all in one place so that no two overlap: away from via's default
    /// range (22000-22254) and from the tables the tests name themselves (22990-22999 in
    /// FailClosedTests and DownAndGcTests, 23999, 30000, 31000). Classes whose routes share nothing
    /// could share numbers (each has its own network namespace and cgroup subtree); distinct ranges
    /// keep a left-over route's owner obvious. The MechanismContract rows choose theirs with their
    /// FirstTable, 50 each: SeccompContract 23350, PreloadContract 23450, CgroupContract 23500,
    /// NetnsContract 23750, NftContract 23800, NetclsContract 23850. Of 23000-23999 the mechanisms'
    /// own classes (below) and the rows take: 23300-23899 (OnlyTests has 23550-23599).
    /// </summary>
    internal static readonly Dictionary<string, string> Tables = new()
    {
        ["FollowTests"] = "22600-22699",
        ["CoexistTests"] = "22700-22799",
        ["FailClosedTests"] = "22900-22989",
        ["AntiEscapeTests"] = "24000-24099",
        ["AttachTests"] = "25500-25599",
        ["BadInputTests"] = "24100-24199",
        ["ConfigurationTests"] = "24200-24299",
        ["CrashTests"] = "24300-24399",
        ["DemoTests"] = "24400-24499",
        ["DnsTests"] = "24500-24599",
        ["DnsBadInputTests"] = "24600-24699",
        ["DoctorTests"] = "24700-24799",
        ["DownAndGcTests"] = "24800-24899",
        ["EgressGuardTests"] = "24900-24999",
        ["EgressTests"] = "25000-25099",
        ["KillSwitchTests"] = "25100-25199",
        ["LifecycleTests"] = "25200-25299",
        ["SharingTests"] = "25300-25399",
        ["NetnsMacvlanTests"] = "25400-25449",
        ["NamedRouteTests"] = "25600-25649",
        ["ApplyTests"] = "25650-25699",
        ["RuleTests"] = "25700-25749",
        ["OnlyTests"] = "23550-23599",
        // These two name their state directory and config themselves (VIA_STATE_DIR, VIA_CONFIG in each call).
        ["SeccompTests"] = "23300-23349",
        ["PreloadTests"] = "23400-23449",
        ["NetnsTests"] = "23700-23749",
        ["NftTests"] = "23600-23649",
        ["NetclsTests"] = "23650-23699",
    };

    private int _disposed;

    public ClassState(string name) : this(name, Tables.TryGetValue(name, out var tables) ? tables
        : throw new InvalidOperationException($"{name} has no table range: add one to ClassState.Tables")) { }

    /// <summary>The state of a class that chooses its tables itself (a <see cref="Contract.MechanismContract"/> row).</summary>
    public ClassState(string name, string tables)
    {
        Name = name;
        TableRange = tables;
        string id = $"via-test-{name}-{System.Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}";
        StateDirectory = Path.Combine("/run", id);
        Subtree = id;
    }

    public string Name { get; }

    /// <summary>VIA_STATE_DIR: journals, lock, DNS files, the private cgroup2 mount point.</summary>
    public string StateDirectory { get; }

    /// <summary>VIA_CGROUP_SUBTREE: the class's routes' cgroups are &lt;cgroup2&gt;/Subtree/tN.</summary>
    public string Subtree { get; }

    /// <summary>"FIRST-LAST", the class's 'tables' setting.</summary>
    public string TableRange { get; }

    /// <summary>The first table of the range: what the class's first route gets.</summary>
    public uint FirstTable => uint.Parse(TableRange.Split('-')[0], CultureInfo.InvariantCulture);

    /// <summary>VIA_CONFIG: a via.conf in the state directory, written on first use (as root: a class whose tests are skipped makes nothing).</summary>
    public string Config
    {
        get
        {
            if (!File.Exists(ConfigPath)) Configure();
            return ConfigPath;
        }
    }

    private string ConfigPath => Path.Combine(StateDirectory, "via.conf");

    public string RoutesDirectory => Path.Combine(StateDirectory, "routes");

    public string JournalPath(string id) => Path.Combine(RoutesDirectory, id + ".json");

    /// <summary>The journals of the class's routes now, sorted (for a snapshot).</summary>
    public List<string> Journals() => Directory.Exists(RoutesDirectory) ? [.. Directory.EnumerateFiles(RoutesDirectory).Order()] : [];

    /// <summary>Writes the class's via.conf: its tables, then <paramref name="extra"/> lines (mark-mask, priority).</summary>
    public void Configure(string extra = "")
    {
        Directory.CreateDirectory(StateDirectory);
        File.WriteAllText(ConfigPath, $"tables = {TableRange}\n{extra}");
    }

    /// <summary>The class's environment for via: VIA_STATE_DIR, VIA_CGROUP_SUBTREE, VIA_CONFIG.</summary>
    public Dictionary<string, string> Environment() => new()
    {
        ["VIA_STATE_DIR"] = StateDirectory,
        ["VIA_CGROUP_SUBTREE"] = Subtree,
        ["VIA_CONFIG"] = Config,
    };

    /// <summary>
    /// env VIA_STATE_DIR=... VIA_CGROUP_SUBTREE=... VIA_CONFIG=... [ENVIRONMENT...] bin/via ARGS: the
    /// command line that runs via as this class's (NAME=VALUE items of <paramref name="environment"/> come after, and win).
    /// </summary>
    public string[] Command(IEnumerable<string> environment, IEnumerable<string> args) => [.. EnvPrefix, .. environment, ViaBinary.Path, .. args];

    /// <summary>env VIA_STATE_DIR=... VIA_CGROUP_SUBTREE=... VIA_CONFIG=...: what runs a command (a script that starts via) with the class's environment.</summary>
    public string[] EnvPrefix => ["env", .. Environment().Select(e => $"{e.Key}={e.Value}")];

    /// <summary>
    /// Takes via's lock of the class's state directory, as a via holds it: while the test holds it,
    /// the class's vias (their watchers too) wait. Never via's own lock (/run/via/lock).
    /// </summary>
    public global::Via.Kernel.Processes.FileLock Lock()
    {
        Directory.CreateDirectory(StateDirectory);
        global::Via.Kernel.Processes.FileLock? held = null;
        Via.WaitUntil(() => (held = global::Via.Kernel.Processes.FileLock.TryAcquire(Path.Combine(StateDirectory, "lock"))) is not null, "via's lock of " + StateDirectory, TimeSpan.FromSeconds(10));
        return held!;
    }

    /// <summary>The class's subtree under each cgroup2 mount of this mount namespace (there is one hierarchy: the same directory seen twice at most).</summary>
    public List<string> CgroupSubtrees() => [.. Cgroup2.FindMounts().Select(m => Path.Combine(m, Subtree))];

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        GC.SuppressFinalize(this);
        foreach (var subtree in CgroupSubtrees().Where(Directory.Exists))
            RemoveCgroup(subtree);
        if (Directory.Exists(StateDirectory)) Directory.Delete(StateDirectory, recursive: true);
    }

    /// <summary>Kills what is left in a cgroup (cgroup.kill, Linux 5.14) and removes it, children first; its eBPF programs go with it.</summary>
    private static void RemoveCgroup(string cgroup)
    {
        foreach (var child in Directory.EnumerateDirectories(cgroup)) RemoveCgroup(child);
        string kill = Path.Combine(cgroup, "cgroup.kill");
        if (File.Exists(kill) && Cgroup2.Populated(cgroup) == true)
        {
            File.WriteAllText(kill, "1");
            Via.WaitUntil(() => Cgroup2.Populated(cgroup) != true, $"the processes left in {cgroup} to die", TimeSpan.FromSeconds(10));
        }
        Directory.Delete(cgroup);
    }
}

/// <summary>The <see cref="ClassState"/> of test class <typeparamref name="TClass"/>, as a class fixture (for classes without a shared topology).</summary>
public sealed class ClassState<TClass>() : ClassState(typeof(TClass).Name);

/// <summary>
/// One two-uplink topology (see <see cref="Topology"/>) for a test class, removed after it, and the
/// class's own via (<see cref="ClassState"/>): <see cref="Via.Run"/>, <see cref="Via.Start"/> and
/// <see cref="HostSnapshot"/> on this topology use the class's state directory, subtree and tables.
/// </summary>
public class TopologyFixture : IDisposable
{
    private static readonly ConcurrentDictionary<Topology, ClassState> States = new(ReferenceEqualityComparer.Instance);
    private static int _counter;
    private readonly Lazy<Topology> _topology;
    private ClassState? _state;
    private readonly bool _ownsState;

    /// <summary>A topology for a class whose state <paramref name="state"/> is (its owner disposes of it).</summary>
    public static TopologyFixture For(ClassState state) => new(state, ownsState: false);

    /// <summary>
    /// The fixture of a class that names its state itself (<see cref="Contract.MechanismContract"/>,
    /// one base for several classes): the class <see cref="Claim"/>s it before using the topology.
    /// (xunit allows a class fixture one public constructor: this one.)
    /// </summary>
    public TopologyFixture() : this(null, ownsState: true) { }

    protected TopologyFixture(ClassState? state, bool ownsState)
    {
        _state = state;
        _ownsState = ownsState;
        _topology = new Lazy<Topology>(() =>
        {
            var t = Topology.Create($"vt{Environment.ProcessId % 100000}x{Interlocked.Increment(ref _counter)}", ViaBinary.Path);
            States[t] = State;
            return t;
        });
    }

    public ClassState State => _state ?? throw new InvalidOperationException("this TopologyFixture has no class state: Claim it first");

    /// <summary>Gives this fixture the state named <paramref name="name"/> with <paramref name="tables"/>, made once (each test of the class claims the same).</summary>
    public TopologyFixture Claim(string name, string tables)
    {
        lock (_topology)
        {
            _state ??= new ClassState(name, tables);
            if (_state.Name != name || _state.TableRange != tables)
                throw new InvalidOperationException($"this fixture is {_state.Name}'s (tables {_state.TableRange}), not {name}'s (tables {tables})");
        }
        return this;
    }

    public Topology Topology => _topology.Value;

    /// <summary>The class state of a topology made by a fixture.</summary>
    public static ClassState StateOf(Topology t) =>
        States.TryGetValue(t, out var state) ? state : throw new InvalidOperationException($"topology {t.Prefix} was not made by a TopologyFixture: via would run without a class state");

    public void Dispose()
    {
        GC.SuppressFinalize(this);
        try
        {
            if (_topology.IsValueCreated)
            {
                var t = _topology.Value;
                // A route a failed test left: removed by via's own collector, in the topology's
                // namespace (where its rules and routes are, and where gc sweeps nothing else).
                if (_state!.Journals().Count > 0) t.InHost(_state.Command([], ["gc"]));
                States.TryRemove(t, out _);
                t.Dispose();
            }
        }
        finally
        {
            if (_ownsState) _state?.Dispose();
        }
    }
}

/// <summary>The topology and own via of test class <typeparamref name="TClass"/> (<c>IClassFixture&lt;TopologyFixture&lt;TClass&gt;&gt;</c>).</summary>
public sealed class TopologyFixture<TClass>() : TopologyFixture(new ClassState(typeof(TClass).Name), ownsState: true);

/// <summary>Helpers shared by the kernel tests.</summary>
public static class Via
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>ip netns exec HOST bin/via ARGS..., as the class that owns the topology.</summary>
    public static (int Code, string Out, string Err) Run(Topology t, params string[] args) =>
        t.InHost(Line(t, [], args), Timeout);

    /// <summary>ip netns exec HOST bin/via ARGS... with <paramref name="environment"/> (NAME=VALUE) added, as the class that owns the topology.</summary>
    public static (int Code, string Out, string Err) RunWith(Topology t, IEnumerable<string> environment, params string[] args) =>
        t.InHost(Line(t, environment, args), Timeout);

    /// <summary>The command line (env ... bin/via ARGS) that runs via as the class that owns the topology, for <see cref="Topology.InHost"/> or a script.</summary>
    public static string[] Line(Topology t, IEnumerable<string> environment, IEnumerable<string> args) =>
        TopologyFixture.StateOf(t).Command(environment, args);

    /// <summary>via run --dev up2 -- COMMAND..., in the topology's host namespace.</summary>
    public static (int Code, string Out, string Err) Up2(Topology t, params string[] command) =>
        Run(t, ["run", "--dev", "up2", "--", .. command]);

    /// <summary>
    /// Starts bin/via ARGS in the host namespace in the background, as the class that owns the
    /// topology, its stdout and stderr readable (and stdin writable with <paramref name="input"/>).
    /// </summary>
    public static System.Diagnostics.Process Start(Topology t, IEnumerable<string> args, IDictionary<string, string>? environment = null, bool input = false)
    {
        var start = new System.Diagnostics.ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = input, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", t.Host, ViaBinary.Path }.Concat(args)) start.ArgumentList.Add(a);
        foreach (var (k, v) in TopologyFixture.StateOf(t).Environment()) start.Environment[k] = v;
        if (environment is not null) foreach (var (k, v) in environment) start.Environment[k] = v;
        return System.Diagnostics.Process.Start(start)!;
    }

    /// <summary>The routes of the class that owns the topology, from 'via ls --json'.</summary>
    public static List<System.Text.Json.JsonElement> Routes(Topology t)
    {
        var r = Run(t, "ls", "--json");
        Assert.True(r.Code == 0, r.Err);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Out);
        return [.. doc.RootElement.EnumerateArray().Select(e => e.Clone())];
    }

    /// <summary>Waits until 'via ls --json' shows a route of the class on <paramref name="device"/> with at least <paramref name="processes"/> processes in it.</summary>
    public static void WaitForRoute(Topology t, string device, int processes = 1) =>
        WaitUntil(() => Routes(t).Any(r => r.GetProperty("device").GetString() == device && r.GetProperty("processes").GetArrayLength() >= processes),
            $"via ls to show a route on {device} with {processes} process(es)");

    /// <summary>The command line of the .NET probe client, for sh -c.</summary>
    public static string ProbeLine(string proto, string address) => string.Join(' ', Clients.DotNet(proto, address));

    public static string Port => Topology.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Polls <paramref name="condition"/> every 50 ms until it holds; fails the test after <paramref name="bound"/> (default <see cref="Timeout"/>).</summary>
    public static void WaitUntil(Func<bool> condition, string what, TimeSpan? bound = null)
    {
        var deadline = DateTime.UtcNow + (bound ?? Timeout);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("waited too long for " + what);
            Thread.Sleep(50);
        }
    }
}
