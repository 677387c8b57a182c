using Via.Engine.Launching;
using Via.Kernel;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Mechanisms.Dns;
using Via.Planning;
using Via.Planning.Dns;

namespace Via.Engine;

/// <summary>What a caller asks of a route session.</summary>
/// <param name="Method">A mechanism's name, or "auto" (the first usable one that can serve the program).</param>
/// <param name="Program">The resolved program file (mechanisms may refuse it: a static binary cannot be preloaded).</param>
public sealed record SessionRequest(RouteRequest Route, string Method, DnsRequest Dns, ProgramImage Program);

/// <summary>Where a session's words go: <paramref name="Note"/> for what the user must know (one line each),
/// <paramref name="Verbose"/> (or null) for what --verbose shows.</summary>
public sealed record SessionOutput(Action<string> Note, Action<string>? Verbose)
{
    public void Say(string line) => Verbose?.Invoke(line);
}

/// <summary>A plan shown, not made (--dry-run): what a session would do.</summary>
public sealed record SessionPreview(Plan Plan, DnsPlan Dns, string NumbersChosen, string MechanismChosen);

/// <summary>
/// One program's use of a route: the route session as a library. <see cref="Open"/> takes via's lock,
/// plans the route (or joins the same route another via made), writes the journal first and applies
/// all or nothing; <see cref="Run"/> launches the program with its mechanism's additions and waits,
/// while a watcher keeps the route what it was made to be; <see cref="Leave"/> removes the route when
/// its last user and process are gone, or leaves a reaper for daemons that remain. 'via run' is a thin
/// caller; a service or an in-process library can be another.
/// </summary>
public sealed class RouteSession
{
    private readonly SessionOutput _output;
    private readonly Fault _fault;

    /// <summary>The route as this session last knew it (re-made by its watcher, joined, or new).</summary>
    public ActiveRoute Route { get; private set; }

    public IMechanism Mechanism { get; }

    /// <summary>What the mechanism was told of the route.</summary>
    public TagRequest Tag { get; }

    /// <summary>How the program's names resolve.</summary>
    public DnsPlan Dns { get; }

    private RouteSession(ActiveRoute route, IMechanism mechanism, TagRequest tag, DnsPlan dns, SessionOutput output, Fault fault)
    {
        Route = route;
        Mechanism = mechanism;
        Tag = tag;
        Dns = dns;
        _output = output;
        _fault = fault;
    }

    /// <summary>The plan, read-only: no lock, nothing created (--dry-run; needs no root).</summary>
    public static SessionPreview Preview(SessionRequest request, Action<string>? warn = null)
    {
        request = request with { Route = DnsPlanner.Through(request.Route, request.Dns) };
        using var host = new Host();
        var view = HostView.Read(host);
        var (mechanism, why) = MechanismChoice.Choose(request.Method, view, request.Program, request.Route.Direct is not null, request.Route.Only is not null);
        var resolved = RouteResolver.Resolve(request.Route, view);
        var (plan, described) = NewPlan(request.Route, mechanism, view, resolved, Settings.Load(), warn, warn);
        return new SessionPreview(plan, DecideDns(request.Dns, view, resolved, request.Route.Only is not null), described, why);
    }

    /// <summary>
    /// Makes the route, or joins the same one: under via's lock, journal first. Throws
    /// <see cref="PlanException"/>, <see cref="ApplyException"/> (everything undone, or what was not
    /// recorded for 'via gc'), <see cref="KernelException"/>, <see cref="TimeoutException"/> (the lock).
    /// </summary>
    public static RouteSession Open(SessionRequest request, SessionOutput output, Fault fault)
    {
        // --only with --dns servers: the servers are destinations of the route too.
        request = request with { Route = DnsPlanner.Through(request.Route, request.Dns) };
        var settings = Settings.Load();
        using var host = new Host();
        using (RouteRegistry.Lock(output.Note))
        {
            PhaseTrace.Mark("lock");
            var view = HostView.Read(host);
            var (mechanism, why) = MechanismChoice.Choose(request.Method, view, request.Program, request.Route.Direct is not null, request.Route.Only is not null);
            output.Say($"method {mechanism.Name}: {why}");
            var resolved = RouteResolver.Resolve(request.Route, view);
            var dns = DecideDns(request.Dns, view, resolved, request.Route.Only is not null);
            string here = Namespaces.CurrentNetwork();
            string key = Planner.Key(here, mechanism, resolved, request.Route);
            PhaseTrace.Mark("host");
            var shared = RouteRegistry.FindShared(key);
            PhaseTrace.Mark("find");
            if (shared is not null)
            {
                var joined = RouteRegistry.Join(shared, ProcessIdentity.Self);
                PhaseTrace.Mark("journal");
                output.Say($"joining route {joined.Id} (dev {joined.Device}, table {joined.Table})");
                var tag = Planner.Tagging(joined.Id, joined.Mark, view, resolved, joined.Cgroup!, joined.Owner);
                return new RouteSession(joined, mechanism, tag, dns, output, fault);
            }

            var (plan, described) = NewPlan(request.Route, mechanism, view, resolved, settings, output.Note, output.Verbose);
            PhaseTrace.Mark("plan");
            output.Say(described);
            var tagging = Planner.Tagging(plan.RouteId, plan.Numbers.Mark, view, resolved, plan.Membership, request.Route.Owner);
            var active = new ActiveRoute(plan.RouteId, key, here, DateTimeOffset.UtcNow, request.Route.Device,
                (resolved.Gateway4 ?? resolved.Gateway6)?.ToString(), plan.Numbers.Mark, plan.Numbers.Table,
                mechanism.Name, plan.Membership, [ProcessIdentity.Self], false, [.. plan.Changes])
            {
                // What the route follows IFACE with, should it change under the program (RouteWatcher).
                RequestedGateway = request.Route.Gateway?.ToString(),
                RequestedSource = request.Route.Source?.ToString(),
                RequestedTable = request.Route.Table,
                Owner = request.Route.Owner,
                Only = request.Route.Only,
                Launch = plan.Launch,
            };
            // Journal first: whatever happens next, 'via gc' knows what may exist.
            Journal.Write(active);
            PhaseTrace.Mark("journal");
            fault.At("journal");
            try
            {
                Applier.Apply(host, plan.Changes, c =>
                {
                    output.Say("+ " + c.Command);
                    fault.At("apply");
                });
            }
            catch (ApplyException e)
            {
                // What could not be undone stays in the journal, for 'via gc'. (Any other failure
                // keeps the whole journal: this via is gone, so gc removes the route.)
                Teardown.Record(active, e.Leftovers);
                foreach (var l in e.Leftovers) output.Note("could not undo: " + l);
                if (e.Leftovers.Count > 0) output.Note($"what is left is recorded in {Journal.PathOf(active.Id)}; 'via gc' retries it");
                throw;
            }
            PhaseTrace.Mark("setup");
            return new RouteSession(active, mechanism, tagging, dns, output, fault);
        }
    }

    /// <summary>
    /// Runs the program on the route and waits for it: its exit status (128 + N for signal N; 126,
    /// 127 or 125 when it could not be started, said through the output). <paramref name="started"/>
    /// gets its pid (to forward signals), and 0 once it has exited.
    /// </summary>
    public int Run(string path, string[] command, Credentials? user, IReadOnlyDictionary<string, string> environment, Action<int>? started = null)
    {
        // While the program runs, the route follows IFACE and puts back what others remove (DESIGN.md
        // point 12), from RouteWatcher.Deferral after the program started: one that is done by then costs no watcher.
        using var watcher = RouteWatcher.Create(Route.Id, _output.Note, _fault);
        int status;
        try
        {
            status = Launch(path, command, user, environment, started, watcher.Start);
        }
        catch (Exception e)
        {
            // Reported in one line; the route is still left, as after any program.
            _output.Note($"could not start the program: {Failure.Describe(e)}");
            status = ExitCodes.ViaFailed;
        }
        watcher.Dispose();
        PhaseTrace.Mark("unwatch");
        // What this via remembers of the route (for a wiped /run) includes what its watcher re-made.
        Route = watcher.Latest ?? Route;
        return status;
    }

    private int Launch(string path, string[] command, Credentials? user, IReadOnlyDictionary<string, string> environment, Action<int>? started, Action startWatching)
    {
        // The program's own resolver files, removed on every way out of here (the program's mounts
        // hold them once it has exec'd).
        using var resolverFiles = WriteResolverFiles(Dns.Private);
        var additions = Route.Launch;
        var full = new Dictionary<string, string>(environment, StringComparer.Ordinal);
        foreach (var (k, v) in additions.Environment) full[k] = v;
        if (user is not null && !user.IsRoot)
        {
            full["HOME"] = user.Home;
            full["USER"] = user.Name;
            full["LOGNAME"] = user.Name;
        }
        string cgroup = Mechanisms.Cgroup.CgroupPaths.Resolve(Route.Cgroup!);
        var spec = new LaunchSpec(cgroup, user, full, resolverFiles?.Mounts ?? [], additions.SeccompListener, additions.NetworkNamespace, additions.JoinCgroups);
        var program = ProgramLauncher.Start(spec, path, command, _output.Note);
        PhaseTrace.Mark("spawn");
        // Exec'd (or failed): the files are needed no longer. Not so through the launcher stage,
        // which may not have made its mounts yet: the using above removes them once it is done.
        if (!program.ThroughStage) resolverFiles?.Dispose();
        if (program.FailedStatus is { } failed) return failed;
        var launched = new LaunchedProgram(program.Pid, program.SeccompListener, user);
        try
        {
            Mechanism.Started(Tag, launched);
        }
        catch (Exception e)
        {
            // Never a program running untagged: it dies before it can do anything on its own.
            Exec.Signal(program.Pid, 9);
            ProgramLauncher.Wait(program);
            Mechanism.Finished(Tag, launched);
            _output.Note($"could not tag the program's sockets ({Mechanism.Name}): {Failure.Describe(e)}; it was stopped");
            return ExitCodes.ViaFailed;
        }
        finally
        {
            program.SeccompListener?.Dispose();
        }
        started?.Invoke(program.Pid);
        if (!ChildExit.Within(program.Pid, RouteWatcher.Deferral)) startWatching();
        int status = ProgramLauncher.Wait(program);
        PhaseTrace.Mark("wait");
        started?.Invoke(0);
        Mechanism.Finished(Tag, launched);
        return status;
    }

    /// <summary>
    /// This program is done with the route: the route goes if no other via and no process uses it;
    /// if daemonized descendants remain, a detached reaper removes it once they are gone. Failures
    /// are said, never thrown: the route then stays fail-closed until 'via gc'.
    /// </summary>
    public void Leave()
    {
        _fault.At("exit");
        (RouteRegistry.Outcome outcome, List<string> problems) left;
        try
        {
            using (RouteRegistry.Lock(_output.Note))
            {
                PhaseTrace.Mark("lock2");
                left = RouteRegistry.Leave(Route.Id, ProcessIdentity.Self, () => _fault.At("undo"), remembered: Route);
            }
            PhaseTrace.Mark("teardown");
        }
        catch (Exception e)
        {
            _output.Note($"could not remove route {Route.Id}: {Failure.Describe(e)}; 'via gc' will");
            return;
        }
        foreach (var p in left.problems) _output.Note(p);
        switch (left.outcome)
        {
            case RouteRegistry.Outcome.ProcessesRemain:
                Reaper.Start(Route);
                _output.Say($"processes remain in route {Route.Id}; it is removed when they exit");
                break;
            case RouteRegistry.Outcome.InUse:
                _output.Say($"route {Route.Id} stays for its other programs");
                break;
            case RouteRegistry.Outcome.Standing:
                // Its keeper was started by 'via up' (looking for it here would cost each launch a scan of /proc).
                _output.Say($"route {Route.Id} stays: it is a standing route ('via down {Route.Name ?? Route.Id}' removes it)");
                break;
            default:
                _output.Say($"removed route {Route.Id}");
                break;
        }
    }

    /// <summary>A new route's plan, with numbers chosen for this host under the lock (DESIGN.md point 13).</summary>
    /// <param name="verbose">What --verbose shows of the plan (--ip: a family without a gateway).</param>
    private static (Plan Plan, string Numbers) NewPlan(RouteRequest request, IMechanism mechanism, HostView view, ResolvedRoute resolved, Settings settings, Action<string>? warn = null,
        Action<string>? verbose = null)
    {
        var active = RouteRegistry.All().ToList();
        // --ip, checked before anything is allocated or changed.
        var direct = request.Direct is { } asked ? DirectPlanner.Plan(asked, resolved, view, active, verbose) : null;
        view = view.WithFirewallMarks();
        var choice = NumberChoice.Choose(settings, view, active, Namespaces.CurrentNetwork());
        foreach (var w in choice.Warnings) warn?.Invoke(w);
        var numbers = Allocator.Allocate(view, active, choice.Space, request.Table);
        bool guard = true;
        if (!mechanism.NeedsCgroupBpf && Mechanisms.Guard.EgressGuardSupport.Refused() is { } why)
        {
            guard = false;
            warn?.Invoke($"no egress guard for this route: this host refuses cgroup eBPF ({why}); method {mechanism.Name} tags every socket without it, "
                + "but a packet whose socket names its own way out per message (IP_PKTINFO, a multicast interface, an IPv6 scope id) is not checked");
        }
        return (Planner.Make(request, resolved, view, mechanism, numbers, Planner.RouteId(numbers), guard, direct), choice.Describe());
    }

    /// <summary>Names resolve through the route (DESIGN.md point 7): decided, like the route, before anything changes.</summary>
    private static DnsPlan DecideDns(DnsRequest request, HostView view, ResolvedRoute resolved, bool only) =>
        DnsPlanner.Decide(request, HostResolver.Read(resolved.Link.Index, resolved.Link.Name), resolved, view, DateTimeOffset.UtcNow, only);

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
}
