using Via.Kernel.Cgroups;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Mechanisms.Cgroup;
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
        if (method != MechanismChoice.Auto && method != Method)
            throw new ViaException($"--method {method} cannot route a process that is already running: only method {Method} can (an eBPF program on a cgroup marks each socket as it is created); leave --method out, or use 'via run'");
        string from = Refusal(pid);
        var program = new ProgramImage(ProcessTree.Program(pid) ?? $"/proc/{pid}/exe", false, false);
        RouteSession session;
        try
        {
            session = RouteSession.Open(new SessionRequest(route, Method, DnsRequest.Host, program), output, fault);
        }
        catch (PlanException e) when (method == MechanismChoice.Auto && e.Message.StartsWith($"method {Method} ", StringComparison.Ordinal))
        {
            throw new PlanException($"'via attach' needs method {Method}, and {e.Message["method ".Length..]}");
        }
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
