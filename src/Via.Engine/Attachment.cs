using Via.Kernel.Cgroups;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Mechanisms.Cgroup;
using Via.Mechanisms.Changes;
using Via.Planning;
using Via.Planning.Dns;

namespace Via.Engine;

/// <summary>What <c>via attach</c> did: the route, the processes it moved, and the sockets they had
/// opened before (marked, or not, when they were made: they keep their path).</summary>
public sealed record AttachOutcome(ActiveRoute Route, List<int> Moved, List<OpenSocket> Kept);

/// <summary>What <c>via detach</c> did: the processes it moved back, and whether their route went with them.</summary>
public sealed record DetachOutcome(string RouteId, List<(int Pid, string To)> Moved, bool RouteRemoved);

/// <summary>
/// A process that is already running, put on a route (<c>via attach --pid</c>) and taken off it
/// (<c>via detach --pid</c>). Only the cgroup mechanism can do it: its eBPF program on the route's
/// cgroup marks a socket when it is created, so moving the process (and its descendants) into that
/// cgroup routes every socket it opens from then on, and its children follow by themselves. Sockets
/// it opened before keep their path. Once via is gone the route is the reaper's: it goes when the
/// attached processes have all exited (or were detached), like a route whose program left daemons.
/// </summary>
public static class Attachment
{
    /// <summary>The only mechanism that can tag a process that is already running.</summary>
    public const string Method = "cgroup";

    /// <summary>Moves <paramref name="pid"/> and its descendants onto the route asked for (opened, or joined). Throws
    /// <see cref="ViaException"/> (refused: nothing changed), <see cref="PlanException"/>, <see cref="ApplyException"/>, like <see cref="RouteSession.Open"/>.</summary>
    public static AttachOutcome AttachPid(int pid, RouteRequest route, string method, SessionOutput output, Fault fault)
    {
        CheckMethod(method);
        string from = Refusal(pid);
        var program = new ProgramImage(ProcessTree.Program(pid) ?? $"/proc/{pid}/exe", false, false);
        var session = OpenFor(route, method, program, output, fault);
        var moved = new List<int>();
        try
        {
            using (RouteRegistry.Lock(output.Note))
            {
                var current = Journal.Read(Journal.PathOf(session.Route.Id));
                string target = CgroupPaths.Resolve(current.Cgroup!);
                string root = CgroupPaths.Root();
                var records = new List<AttachedProcess>(current.Attached.Where(a => a.Process.IsAlive));
                // Again until no new one: a child forked before its parent moved does not follow it.
                for (int round = 0; round < 10; round++)
                {
                    int before = moved.Count;
                    foreach (int p in ProcessTree.WithDescendants(pid))
                    {
                        if (moved.Contains(p) || ProcessIdentity.Of(p) is not { } who) continue;
                        string? origin = p == pid ? from : Cgroup2.Of(p);
                        if (origin is null) continue; // exited meanwhile
                        if (p != pid && MovableFrom(origin, root) is { } skip)
                        {
                            output.Note($"process {p} (a descendant of {pid}) stays where it is: {skip}");
                            moved.Add(p);
                            continue;
                        }
                        fault.At("attach");
                        try { Cgroup2.Move(target, p); }
                        catch (Kernel.KernelException) when (ProcessIdentity.Of(p) is null) { continue; }
                        records.Add(new AttachedProcess(who, origin));
                        moved.Add(p);
                        output.Say($"moved pid {p} from {origin} into {target}");
                    }
                    Journal.Write(current with { Attached = records });
                    if (moved.Count == before) break;
                }
                moved = records.Where(r => moved.Contains(r.Process.Pid)).Select(r => r.Process.Pid).ToList();
            }
        }
        finally
        {
            // Hands the route to the reaper while the processes live (they are its members now), or
            // removes it if they are gone (or none could be moved).
            session.Leave();
        }
        if (moved.Count == 0) throw new ViaException($"process {pid} exited before it could be attached; nothing is left changed");
        return new AttachOutcome(session.Route, moved, ProcessTree.Sockets(moved));
    }

    private static void CheckMethod(string method)
    {
        if (method != MechanismChoice.Auto && method != Method)
            throw new ViaException($"--method {method} cannot route what is already running: only method {Method} can (an eBPF program on a cgroup marks each socket as it is created); leave --method out, or use 'via run'");
    }

    /// <summary>Why <paramref name="pid"/> cannot be attached (a <see cref="ViaException"/>), else its cgroup now.</summary>
    private static string Refusal(int pid)
    {
        if (pid <= 0 || ProcessIdentity.Of(pid) is null) throw new ViaException($"no process {pid}; nothing was changed");
        if (pid == 1) throw new ViaException("process 1 (init) cannot be attached: it would take every service with it; attach a service with --unit or --cgroup");
        if (ProcessTree.IsKernelThread(pid)) throw new ViaException($"process {pid} is a kernel thread: it opens no sockets of a program's, and cannot leave its cgroup");
        if (pid == Environment.ProcessId || (ProcessTree.Program(pid) is { } exe && exe == Environment.ProcessPath))
            throw new ViaException($"process {pid} is via itself; attach the program, not via");
        string from = Cgroup2.Of(pid) ?? throw new ViaException($"process {pid} is in no cgroup v2 (its /proc/{pid}/cgroup has no '0::' line); it cannot be attached");
        if (RouteOf(from) is { } id)
            throw new ViaException($"process {pid} is already on route {id}; 'via detach --pid {pid}' first");
        if (MovableFrom(from, CgroupPaths.Root()) is { } why) throw new ViaException($"process {pid} cannot be attached: {why}");
        return from;
    }

    /// <summary>Why a process cannot be moved out of cgroup <paramref name="from"/>; null if it can.</summary>
    private static string? MovableFrom(string from, string root)
    {
        if (RouteOf(from) is { } id) return $"it is on route {id} already";
        string? type = Cgroup2.Type(root + from);
        return type is "threaded" or "domain invalid"
            ? $"its cgroup {from} is of type '{type}' (a threaded subtree): the kernel moves whole processes only out of a domain cgroup"
            : null;
    }

    /// <summary>The id of via's route whose cgroup <paramref name="cgroup"/> (a path below the hierarchy's root) is, or is in; null otherwise.</summary>
    public static string? RouteOf(string cgroup)
    {
        var parts = cgroup.Split('/', StringSplitOptions.RemoveEmptyEntries);
        int at = Array.IndexOf(parts, RouteCgroups.Subtree);
        return at >= 0 && at + 1 < parts.Length && Journal.ReadAll().Any(j => j.Route.Id == parts[at + 1]) ? parts[at + 1] : null;
    }

    /// <summary>
    /// Moves <paramref name="pid"/> and its descendants that are in the same route's cgroup back to
    /// where they came from (the journal), or where their parent is when that cgroup is gone; the
    /// route goes if nothing is left in it and no via uses it.
    /// </summary>
    public static DetachOutcome DetachPid(int pid, SessionOutput output)
    {
        if (pid <= 0 || ProcessIdentity.Of(pid) is null) throw new ViaException($"no process {pid}");
        string cgroup = Cgroup2.Of(pid) ?? throw new ViaException($"process {pid} is in no cgroup v2; it is on no route");
        string id = RouteOf(cgroup) ?? throw new ViaException($"process {pid} is on no route of via's (its cgroup is {cgroup}); 'via ls' lists the routes");
        var moved = new List<(int, string)>();
        RouteRegistry.Outcome outcome;
        using (RouteRegistry.Lock(output.Note))
        {
            var route = Journal.Read(Journal.PathOf(id));
            string root = CgroupPaths.Root();
            var records = route.Attached.Where(a => a.Process.IsAlive).ToList();
            string? Recorded(int p) => records.FirstOrDefault(a => a.Process.Pid == p)?.From;
            string fallback = Recorded(pid) ?? Cgroup2.Of(ParentOf(pid)) ?? "/";
            foreach (int p in ProcessTree.WithDescendants(pid))
            {
                if (Cgroup2.Of(p) != cgroup) continue;
                // A child forked on the route goes where its attached ancestor came from.
                string to = Recorded(p) ?? fallback;
                if (!Directory.Exists(root + to)) to = Cgroup2.Of(ParentOf(p)) is { } parent && RouteOf(parent) is null ? parent : "/";
                try { Cgroup2.Move(root + to, p); }
                catch (Kernel.KernelException) when (ProcessIdentity.Of(p) is null) { continue; }
                moved.Add((p, to));
                output.Say($"moved pid {p} back to {to}");
            }
            Journal.Write(route with { Attached = records.Where(a => !moved.Any(m => m.Item1 == a.Process.Pid)).ToList() });
            List<string> problems;
            (outcome, problems) = RouteRegistry.Leave(id, ProcessIdentity.Self);
            foreach (var p in problems) output.Note(p);
        }
        return new DetachOutcome(id, moved, outcome == RouteRegistry.Outcome.Removed);
    }

    /// <summary>
    /// Routes a whole cgroup of someone else's (a systemd service's) without moving its processes,
    /// which would break the service manager's tracking of them: the route's socket programs are
    /// attached to that cgroup, so its processes and their future children are tagged at socket
    /// creation. (Not the egress guard: it judges every packet of the cgroup's sockets, and would cut
    /// the connections the service already has by another way.) The cgroup is never created nor
    /// removed by via; the route lives until 'via detach' or until the cgroup is removed.
    /// </summary>
    /// <param name="cgroup">Its path below the hierarchy's root (<see cref="CgroupBelowRoot"/>, <see cref="UnitCgroup"/>).</param>
    public static AttachOutcome AttachCgroup(string cgroup, string? unit, RouteRequest route, string method, SessionOutput output, Fault fault)
    {
        CheckMethod(method);
        string what = unit is null ? $"cgroup {cgroup}" : $"unit {unit} (cgroup {cgroup})";
        string root = CgroupPaths.Root();
        string path = root + cgroup;
        if (!File.Exists(Path.Combine(path, "cgroup.procs"))) throw new ViaException($"no cgroup {cgroup} (a cgroup v2 directory under {root}); nothing was changed");
        string relative = cgroup;
        if (relative == "/") throw new ViaException($"the root cgroup cannot be attached: it holds every process of the host; name a service's cgroup");
        if (relative.Split('/', StringSplitOptions.RemoveEmptyEntries)[0] == RouteCgroups.Subtree)
            throw new ViaException($"{what} is in via's own subtree; attach the program with --pid, or run it with 'via run'");
        if (RouteRegistry.All().FirstOrDefault(r => r.AttachedCgroups.Any(c => c.Path == cgroup)) is { } taken)
            throw new ViaException($"{what} is already attached to route {taken.Id}; 'via detach {(unit is null ? $"--cgroup {cgroup}" : $"--unit {unit}")}' first");
        var session = OpenFor(route, method, new ProgramImage(path, false, false), output, fault);
        try
        {
            using (RouteRegistry.Lock(output.Note))
            {
                var current = Journal.Read(Journal.PathOf(session.Route.Id));
                var added = session.Mechanism.Tag(session.Tag with { Cgroup = path });
                // Journal first: whatever happens next, 'via gc' and the teardown know what may be attached.
                var attached = current with { Changes = [.. current.Changes, .. added], AttachedCgroups = [.. current.AttachedCgroups, new AttachedCgroup(cgroup, unit)] };
                Journal.Write(attached);
                fault.At("attach");
                using var host = new Host();
                try
                {
                    Applier.Apply(host, added, c => output.Say("+ " + c.Command));
                }
                catch (ApplyException e)
                {
                    Journal.Write(current with { Changes = [.. current.Changes, .. e.Leftovers.Select(l => l.Change)] });
                    throw;
                }
            }
        }
        finally
        {
            session.Leave();
        }
        var members = Members(path);
        return new AttachOutcome(session.Route, members, ProcessTree.Sockets(members));
    }

    /// <summary>Takes an attached cgroup off its route: the socket programs come off it; the route goes if nothing else is on it.</summary>
    public static DetachOutcome DetachCgroup(string cgroup, string? unit, SessionOutput output)
    {
        string what = unit is null ? $"cgroup {cgroup}" : $"unit {unit} (cgroup {cgroup})";
        var route = RouteRegistry.All().FirstOrDefault(r => r.AttachedCgroups.Any(c => c.Path == cgroup))
            ?? throw new ViaException($"{what} is attached to no route of via's; 'via ls' lists the routes");
        string path = CgroupPaths.Root() + cgroup;
        RouteRegistry.Outcome outcome;
        using (RouteRegistry.Lock(output.Note))
        {
            route = Journal.Read(Journal.PathOf(route.Id));
            bool Here(string recorded) => recorded == path || CgroupPaths.Below(recorded) == cgroup;
            var on = route.Changes.Where(c => c is AttachSocketMark { CgroupPath: var a } && Here(a) || c is AttachSetsockoptGuard { CgroupPath: var b } && Here(b)).ToList();
            using var host = new Host();
            var leftovers = Applier.Undo(host, on, () => output.Say("- detached from " + path));
            foreach (var l in leftovers) output.Note("could not undo: " + l);
            // What could not be undone stays in the journal: the route's teardown (or 'via gc') retries it.
            Journal.Write(route with
            {
                Changes = route.Changes.Where(c => !on.Contains(c) || leftovers.Any(l => l.Change == c)).ToList(),
                AttachedCgroups = route.AttachedCgroups.Where(c => c.Path != cgroup).ToList(),
            });
            List<string> problems;
            (outcome, problems) = RouteRegistry.Leave(route.Id, ProcessIdentity.Self);
            foreach (var p in problems) output.Note(p);
        }
        return new DetachOutcome(route.Id, [.. Members(path).Select(p => (p, path))], outcome == RouteRegistry.Outcome.Removed);
    }

    /// <summary>
    /// The cgroup of a systemd unit (NAME, or NAME.service), found in the cgroup2 hierarchy without asking systemd:
    /// system.slice/NAME if it is there, else the one directory of that name anywhere below the root
    /// (a user's service, a unit in a slice of its own). A unit that is not running has none.
    /// </summary>
    public static string UnitCgroup(string unit)
    {
        string name = UnitName(unit);
        string root = CgroupPaths.Root();
        string system = Path.Combine(root, "system.slice", name);
        if (Directory.Exists(system)) return system[root.Length..];
        var found = new List<string>();
        var level = new List<string> { root };
        for (int depth = 0; depth < 6 && level.Count > 0; depth++)
        {
            var next = new List<string>();
            foreach (var dir in level)
            {
                IEnumerable<string> children;
                try { children = Directory.EnumerateDirectories(dir).ToList(); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
                foreach (var child in children)
                {
                    if (Path.GetFileName(child) == name) found.Add(child);
                    else if (!(dir == root && Path.GetFileName(child) == RouteCgroups.Subtree)) next.Add(child);
                }
            }
            level = next;
        }
        return found.Count switch
        {
            1 => found[0][root.Length..],
            0 => throw new ViaException($"unit {name} has no cgroup under {root}: is it running? ('systemctl status {name}')"),
            _ => throw new ViaException($"unit {name} names {found.Count} cgroups ({string.Join(", ", found)}); attach one with --cgroup PATH"),
        };
    }

    /// <summary>A unit's full name: NAME is NAME.service, as systemctl takes it.</summary>
    public static string UnitName(string unit) =>
        unit.Contains('/') || unit.StartsWith('.') || unit.Length == 0 ? throw new ViaException($"'{unit}' is not a unit name (e.g. nginx.service)")
        : unit.Contains('.') ? unit : unit + ".service";

    /// <summary>A cgroup named on the command line (a directory under a cgroup2 mount, or a path below the hierarchy's root), as its path below the root.</summary>
    public static string CgroupBelowRoot(string given)
    {
        string full = Path.GetFullPath(given.StartsWith('/') ? given : "/" + given);
        string below = CgroupPaths.Below(full) ?? full;
        return below.Length > 1 ? below.TrimEnd('/') : "/";
    }

    /// <summary>The processes in the cgroup and below it.</summary>
    private static List<int> Members(string path)
    {
        var pids = Cgroup2.Processes(path);
        try { foreach (var child in Directory.EnumerateDirectories(path)) pids.AddRange(Members(child)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return pids;
    }

    /// <summary>Opens (or joins) the route with the cgroup method; with auto, a host where it cannot work is said so.</summary>
    internal static RouteSession OpenFor(RouteRequest route, string method, ProgramImage program, SessionOutput output, Fault fault)
    {
        try
        {
            return RouteSession.Open(new SessionRequest(route, Method, DnsRequest.Host, program), output, fault);
        }
        catch (PlanException e) when (method == MechanismChoice.Auto && e.Message.StartsWith($"method {Method} ", StringComparison.Ordinal))
        {
            throw new PlanException($"'via attach' needs method {Method}, and {e.Message["method ".Length..]}");
        }
    }

    private static int ParentOf(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or FormatException) { return 1; }
    }
}
