using System.Diagnostics;
using System.Runtime.InteropServices;
using Via.Cli.Internal;
using Via.Kernel;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Mechanisms.Cgroup;
using Via.Mechanisms.Dns;
using Via.Planning;
using Via.Planning.Dns;

namespace Via.Cli.Commands.Run;

/// <summary>'via run': plan, apply all or nothing (or join the same route), launch, forward signals, wait, leave.</summary>
public static class RunCommand
{
    public static int Execute(RunOptions o)
    {
        PhaseTrace.Mark("parse");
        if (o.Command.Length == 0)
            return Say.Error("no command given; usage: via run --dev IFACE [options] -- COMMAND [ARGS...]");
        if (o.Json && !o.DryRun)
            return Say.Error("--json goes with --dry-run (a running program's output is its own)");
        if (!o.DryRun && !Exec.IsRoot)
            return Say.Error("'via run' changes routing rules and cgroups and needs root; run it with sudo (or try --dry-run)");

        // Find the command before touching anything: a typo must not cost a route set-up.
        string? path = Exec.Resolve(o.Command[0], out bool notExecutable);
        if (path is null)
            return notExecutable
                ? Say.Error($"{o.Command[0]}: permission denied (not executable)", ExitCodes.CannotExecute)
                : Say.Error($"{o.Command[0]}: command not found", ExitCodes.NotFound);

        var who = ResolveUser(o.User);
        var request = new RouteRequest(o.Device, o.Gateway, o.Source, o.Table);
        IMechanism mechanism = new CgroupBpfMechanism();
        var fault = Fault.FromEnvironment();

        using var signals = new SignalForwarder();
        ActiveRoute active;
        DnsPlan dns;
        try
        {
            var settings = Settings.Load();
            Plan NewPlan(HostView view, ResolvedRoute resolved)
            {
                // Mask and priority chosen for this host, under the lock (DESIGN.md point 13).
                var active = RouteRegistry.All().ToList();
                view = view.WithFirewallMarks();
                var choice = NumberChoice.Choose(settings, view, active, Namespaces.CurrentNetwork());
                if (o.Verbose) Console.Error.WriteLine("via: " + choice.Describe());
                else if (o.DryRun && !o.Json) Console.WriteLine("# " + choice.Describe());
                foreach (var w in choice.Warnings) Say.Note(w);
                var numbers = Allocator.Allocate(view, active, choice.Space, request.Table);
                return Planner.Make(request, resolved, view, mechanism, numbers, Planner.RouteId(numbers));
            }

            // Names resolve through the route (DESIGN.md point 7): decided, like the route, before anything changes.
            DnsPlan Dns(HostView view, ResolvedRoute resolved) =>
                DnsPlanner.Decide(o.Dns, HostResolver.Read(resolved.Link.Index, resolved.Link.Name), resolved, view, DateTimeOffset.UtcNow);

            using var host = new Host();
            if (o.DryRun)
            {
                var view = HostView.Read(host);
                var resolved = RouteResolver.Resolve(request, view);
                PlanPrinter.Print(NewPlan(view, resolved), o.Command, who, o.Json, Dns(view, resolved));
                return ExitCodes.Ok;
            }
            PhaseTrace.Mark("prepare");
            using (RouteRegistry.Lock(Say.Note))
            {
                PhaseTrace.Mark("lock");
                var view = HostView.Read(host);
                var resolved = RouteResolver.Resolve(request, view);
                dns = Dns(view, resolved);
                string key = Planner.Key(Namespaces.CurrentNetwork(), mechanism, resolved, request);
                PhaseTrace.Mark("host");
                if (RouteRegistry.FindShared(key) is { } shared)
                {
                    PhaseTrace.Mark("find");
                    active = RouteRegistry.Join(shared, ProcessIdentity.Self);
                    PhaseTrace.Mark("journal");
                    if (o.Verbose) Console.Error.WriteLine($"via: joining route {active.Id} (dev {active.Device}, table {active.Table})");
                }
                else
                {
                    PhaseTrace.Mark("find");
                    var plan = NewPlan(view, resolved);
                    PhaseTrace.Mark("plan");
                    active = new ActiveRoute(plan.RouteId, key, Namespaces.CurrentNetwork(), DateTimeOffset.UtcNow, o.Device,
                        (resolved.Gateway4 ?? resolved.Gateway6)?.ToString(), plan.Numbers.Mark, plan.Numbers.Table,
                        mechanism.Name, plan.Membership, [ProcessIdentity.Self], false, [.. plan.Changes])
                    {
                        // What the route follows IFACE with, should it change under the program (RouteWatcher).
                        RequestedGateway = request.Gateway?.ToString(),
                        RequestedSource = request.Source?.ToString(),
                        RequestedTable = request.Table,
                    };
                    // Journal first: whatever happens next, 'via gc' knows what may exist.
                    Journal.Write(active);
                    PhaseTrace.Mark("journal");
                    fault.At("journal");
                    try
                    {
                        Applier.Apply(host, plan.Changes, c =>
                        {
                            if (o.Verbose) Console.Error.WriteLine("via: + " + c.Command);
                            fault.At("apply");
                        });
                    }
                    catch (ApplyException e)
                    {
                        // What could not be undone stays in the journal, for 'via gc'. (Any other
                        // failure keeps the whole journal: this via is gone, so gc removes the route.)
                        Teardown.Record(active, e.Leftovers);
                        foreach (var l in e.Leftovers) Say.Note("could not undo: " + l);
                        if (e.Leftovers.Count > 0) Say.Note($"what is left is recorded in {Journal.PathOf(active.Id)}; 'via gc' retries it");
                        throw;
                    }
                    PhaseTrace.Mark("setup");
                }
            }
            PhaseTrace.Mark("unlock");
        }
        catch (PlanException e)
        {
            return Say.Error(e.Message);
        }
        catch (ApplyException e)
        {
            return Say.Error($"could not set up the route: {e.Message}{Hint(e)}");
        }
        catch (KernelException e)
        {
            return Say.Error(e.Message);
        }

        if (dns.Warning is { } warning) Console.Error.WriteLine("via: " + warning);
        if (o.Verbose) Console.Error.WriteLine("via: DNS: " + dns.Describe());

        int status;
        if (signals.Received is { } early)
        {
            status = ExitCodes.SignalBase + early; // interrupted during set-up: do not start the program
        }
        else
        {
            // While the program runs, the route follows IFACE and puts back what others remove (DESIGN.md point 12).
            // (From RouteWatcher.Deferral after the program started: one that is done by then costs no watcher.)
            using var watcher = RouteWatcher.Create(active.Id, Say.Note, fault);
            try
            {
                status = Launch(active, path, o.Command, who, signals, dns.Private, watcher.Start);
            }
            catch (Exception e)
            {
                // Reported in one line; the route is still left below, as after any program.
                status = Say.Error($"could not start the program: {Say.Describe(e)}");
            }
            watcher.Dispose();
            PhaseTrace.Mark("unwatch");
            // What this via remembers of the route (for a wiped /run) includes what its watcher re-made.
            active = watcher.Latest ?? active;
        }

        fault.At("exit");
        (RouteRegistry.Outcome outcome, List<string> problems) left;
        try
        {
            using (RouteRegistry.Lock(Say.Note))
            {
                PhaseTrace.Mark("lock2");
                left = RouteRegistry.Leave(active.Id, ProcessIdentity.Self, () => fault.At("undo"), remembered: active);
            }
            PhaseTrace.Mark("teardown");
        }
        catch (Exception e)
        {
            // The program's status is still the answer; the route stays fail-closed until 'via gc'.
            Say.Note($"could not remove route {active.Id}: {Say.Describe(e)}; 'via gc' will");
            return status;
        }
        foreach (var p in left.problems) Say.Note(p);
        if (left.outcome == RouteRegistry.Outcome.ProcessesRemain)
        {
            // Daemonized descendants are still in the route: a detached reaper removes it once they are gone.
            Reaper.Start(active.Id);
            if (o.Verbose) Console.Error.WriteLine($"via: processes remain in route {active.Id}; it is removed when they exit");
        }
        else if (o.Verbose)
        {
            Console.Error.WriteLine(left.outcome == RouteRegistry.Outcome.InUse ? $"via: route {active.Id} stays for its other programs" : $"via: removed route {active.Id}");
        }
        return status;
    }

    private static string Hint(ApplyException e) => e.InnerException switch
    {
        KernelException { ErrorCode: Errno.EPERM or Errno.EACCES } => "; via needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF)",
        KernelException { Operation: var op } when op.StartsWith("bpf(", StringComparison.Ordinal) => "; this kernel may lack cgroup eBPF socket hooks (CONFIG_CGROUP_BPF)",
        _ => "",
    };

    private static PrivateResolverFiles? WriteResolverFiles(PrivateResolver? resolver)
    {
        if (resolver is null) return null;
        try
        {
            return resolver.Write();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ViaException($"could not write the program's resolver files under {PrivateResolverFiles.Root}: {e.Message}");
        }
    }

    /// <summary>--user, else the user who ran sudo, else whoever we are (root).</summary>
    private static Credentials? ResolveUser(string? user)
    {
        if (user is not null)
            return Credentials.Lookup(user) ?? throw new ViaException($"user '{user}' does not exist; pass a user name or uid of this host to --user");
        if (uint.TryParse(Environment.GetEnvironmentVariable("SUDO_UID"), out uint uid) && uid != 0)
        {
            uint gid = uint.TryParse(Environment.GetEnvironmentVariable("SUDO_GID"), out uint g) ? g : uid;
            return Credentials.ForIds(uid, gid);
        }
        return null; // keep our own identity
    }

    private static int Launch(ActiveRoute route, string path, string[] command, Credentials? who, SignalForwarder signals, PrivateResolver? resolver,
        Action startWatching)
    {
        // The program's own resolver files, removed on every way out of here (the program's mounts
        // hold them once it has exec'd; a SIGINT to via is forwarded, never fatal, so this runs).
        using var resolverFiles = WriteResolverFiles(resolver);
        var spec = new LaunchSpec(route.Cgroup is { } cg ? CgroupPaths.Resolve(cg) : null, LaunchSpec.NoEnvironment, resolverFiles?.Mounts);
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
            environment[(string)e.Key] = (string?)e.Value ?? "";
        foreach (var (k, v) in spec.Environment) environment[k] = v;
        if (who is not null && !who.IsRoot)
        {
            environment["HOME"] = who.Home;
            environment["USER"] = who.Name;
            environment["LOGNAME"] = who.Name;
        }

        // Fast path: the program is born in the cgroup (clone3). Else (kernels before 5.7, or
        // VIA_LAUNCHER=stage to test it) the launcher stage moves itself in, then execs.
        bool useLauncher = Environment.GetEnvironmentVariable("VIA_LAUNCHER") == "stage";
        if (!useLauncher && spec.Cgroup is { } cgroup && Spawn.TryStart(cgroup, path, command, environment.Select(e => $"{e.Key}={e.Value}").ToList(), who, spec.Mounts) is { } started)
        {
            resolverFiles?.Dispose(); // exec'd (or failed): the files are needed no longer
            PhaseTrace.Mark("spawn");
            signals.Target = started.Pid;
            if (!ChildExit.Within(started.Pid, RouteWatcher.Deferral)) startWatching();
            int status = Spawn.Wait(started.Pid);
            PhaseTrace.Mark("wait");
            signals.Target = 0;
            return started.FailedAt switch
            {
                Spawn.Stage.Exec when started.Errno == Errno.ENOENT => Say.Error($"{command[0]}: command not found", ExitCodes.NotFound),
                Spawn.Stage.Exec => Say.Error($"{command[0]}: cannot execute: {new KernelException("execve", path, started.Errno).Message}", ExitCodes.CannotExecute),
                Spawn.Stage.Mounts => Say.Error($"could not give the program its own resolver files: {Spawn.MountFailure(spec.Mounts, started.FailedMount, started.Errno).Message}"),
                Spawn.Stage.Credentials => Say.Error($"cannot run the program as {who?.Describe()}: {new KernelException("setresuid", who?.Name ?? "", started.Errno).Message}"),
                _ => status,
            };
        }

        var start = new ProcessStartInfo(Environment.ProcessPath ?? "/proc/self/exe") { UseShellExecute = false };
        Launcher.AddArguments(start.ArgumentList, spec, who, path, command);
        start.Environment.Clear();
        foreach (var (k, v) in environment) start.Environment[k] = v;
        using var child = Process.Start(start) ?? throw new ViaException("could not start the launcher");
        signals.Target = child.Id;
        startWatching();
        child.WaitForExit();
        signals.Target = 0;
        return child.ExitCode; // .NET reports death by signal N as 128 + N, as a shell does
    }
}

/// <summary>Forwards SIGINT, SIGTERM and SIGHUP to the program; remembers one that came before it started.</summary>
internal sealed class SignalForwarder : IDisposable
{
    private readonly List<PosixSignalRegistration> _registrations = [];
    private volatile int _target;

    public int Target { get => _target; set => _target = value; }

    public int? Received { get; private set; }

    public SignalForwarder()
    {
        // The program shares via's process group. In a terminal's foreground, Ctrl-C (SIGINT) and a
        // hangup (SIGHUP) already reach the whole group: forwarding them again would deliver them twice.
        bool terminal = Exec.InTerminalForeground;
        foreach (var (signal, number) in new[] { (PosixSignal.SIGINT, 2), (PosixSignal.SIGTERM, 15), (PosixSignal.SIGHUP, 1) })
        {
            bool forward = !(terminal && number != 15);
            _registrations.Add(PosixSignalRegistration.Create(signal, context =>
            {
                context.Cancel = true; // via never dies of these: it forwards them, then cleans up
                int pid = _target;
                if (pid > 0) { if (forward) Exec.Signal(pid, number); }
                else Received ??= number;
            }));
        }
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
    }
}
