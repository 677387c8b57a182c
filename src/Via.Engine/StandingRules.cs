using Via.Kernel.Bpf;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Mechanisms.Changes;
using Via.Mechanisms.Rules;
using Via.Planning;

namespace Via.Engine;

/// <summary>One standing rule as <c>via rule ls</c> shows it: the rule and the route it is on.</summary>
public sealed record RuleEntry(StandingRule Rule, ActiveRoute Route)
{
    public RuleSelector Selector => Rule.Selector;
}

/// <summary>What <see cref="StandingRules.Add"/> did.</summary>
/// <param name="Added">False when the rule was there already, on that route (nothing changed).</param>
public sealed record RuleAdded(RuleEntry Entry, bool Added);

/// <summary>
/// Standing rules (<c>via rule add|ls|del</c>, and via.conf's <c>[rule]</c> sections through <c>via apply</c>):
/// every socket made by a process of a user, a group or a program name goes through a route, whoever
/// started the process. The route is an ordinary route of the cgroup method (its table, rules and
/// kill switch, as <c>via run</c> makes them); the rules keep it (<see cref="ActiveRoute.Rules"/>).
/// User, group and comm rules are entries of the route's rule program's maps (<see cref="RuleProgram"/>,
/// attached at the cgroup2 root when the route gets its first one): adding or removing one is a map
/// update. The attached program outlives via and holds the maps: that is what keeps the rules.
/// Every change is journaled before it is made, under via's lock.
/// </summary>
public static class StandingRules
{
    /// <summary>
    /// Puts the rule on the route asked for (opened, or joined). The same selector on the same route
    /// is a no-op (its map entry made again, should a crash have lost it); on another route it is
    /// refused unless <paramref name="replace"/>, which takes it off the other route first. Throws
    /// <see cref="ViaException"/> (refused: nothing changed), <see cref="PlanException"/>, <see cref="ApplyException"/>.
    /// </summary>
    /// <param name="origin"><see cref="StandingRule.Cli"/> or <see cref="StandingRule.Config"/>.</param>
    public static RuleAdded Add(RuleSelector selector, RouteRequest route, string origin, SessionOutput output, Fault fault, bool replace = false)
    {
        var rule = Resolve(selector, origin);
        if (selector.Kind == SelectorKind.Dport) PortsOf(selector); // refused before anything is made
        if (Find(selector) is { } existing && !SameRoute(existing.Route, route))
        {
            if (!replace)
                throw new ViaException($"rule {selector} is on route {existing.Route.Id} (dev {existing.Route.Device}) already; 'via rule del {selector}' first, or add it again with --replace");
            Delete(selector, output);
        }
        var session = Attachment.OpenFor(route, Attachment.Method, new ProgramImage("/", false, false), output, fault);
        try
        {
            using (RouteRegistry.Lock(output.Note))
            {
                var current = Journal.Read(Journal.PathOf(session.Route.Id));
                if (FindIn(RouteRegistry.All().Where(r => r.Id != current.Id), rule) is { } other)
                    throw new ViaException($"rule {selector} is on route {other.Route.Id} (dev {other.Route.Device}) already; 'via rule del {selector}' first, or add it again with --replace");
                var had = FindIn([current], rule);
                var updated = had is null ? current with { Rules = [.. current.Rules, rule] } : current;
                return new RuleAdded(new RuleEntry(had?.Rule ?? rule, rule.How == "ebpf"
                    ? AddToProgram(current, updated, rule, output, fault)
                    : AddPortRules(current, updated, rule, output, fault)), had is null);
            }
        }
        finally
        {
            // The route stays for its rules (a reaper keeps it following IFACE); a route this
            // made and could not use goes.
            session.Leave();
        }
    }

    /// <summary>A user, group or comm rule: an entry of the route's rule program's maps (the program attached with the route's first one).</summary>
    private static ActiveRoute AddToProgram(ActiveRoute current, ActiveRoute updated, StandingRule rule, SessionOutput output, Fault fault)
    {
        var program = current.Changes.OfType<AttachRuleProgram>().FirstOrDefault();
        bool attach = program is null;
        program ??= AttachRuleProgram.Make(current.Mark);
        // Journal first: whatever happens next, the teardown and 'via gc' know the program and the rule.
        if (attach) updated = updated with { Changes = [.. current.Changes, program] };
        Journal.Write(updated);
        fault.At("rule");
        try
        {
            if (attach || program.OpenMap(SelectorKind.User) is not { } probe)
            {
                // Its first rule, or its program was detached by someone: attached (again), with every rule of the route.
                using var host = new Host();
                Applier.Apply(host, [program], c => output.Say("+ " + c.Command));
                foreach (var r in updated.Rules) SetEntry(program, r, updated.Mark, output);
            }
            else
            {
                probe.Dispose();
                SetEntry(program, rule, updated.Mark, output);
            }
        }
        catch (Exception e) when (e is ApplyException or Kernel.KernelException)
        {
            // Nothing of it stays: the rule leaves the journal, and so does the program if this made it (and could undo it).
            var leftovers = e is ApplyException a ? a.Leftovers.Select(l => l.Change).ToList() : [];
            if (!attach) RemoveEntry(program, rule, output);
            Journal.Write(current with { Changes = [.. current.Changes, .. leftovers] });
            throw;
        }
        return updated;
    }

    /// <summary>
    /// A destination-port rule: a socket's destination is not known when it is made, so no program can
    /// pick it then; a policy-routing rule picks its packets at the route lookup of connect() or
    /// sendto() instead ('ip rule add pref P+1 ipproto tcp dport 3306 lookup T'), which also gives them
    /// IFACE's source address (no NAT). One priority after the fwmark rules of every via route (P), so
    /// that a program on a route of 'via run' keeps that route; the route's table ends in its
    /// unreachable default, so when IFACE goes the rule's packets fail closed like the route's own.
    /// </summary>
    private static ActiveRoute AddPortRules(ActiveRoute current, ActiveRoute updated, StandingRule rule, SessionOutput output, Fault fault)
    {
        var changes = PortRules(current, rule.Selector);
        var missing = changes.Where(c => !current.Changes.Contains(c)).ToList();
        updated = updated with { Changes = [.. current.Changes, .. missing] };
        Journal.Write(updated);
        fault.At("rule");
        try
        {
            using var host = new Host();
            Applier.Apply(host, missing, c => output.Say("+ " + c.Command));
        }
        catch (ApplyException e)
        {
            Journal.Write(current with { Changes = [.. current.Changes, .. e.Leftovers.Select(l => l.Change)] });
            throw;
        }
        return updated;
    }

    private static (DestinationPort Port, Kernel.Netlink.PortRange Range) PortsOf(RuleSelector selector)
    {
        var port = DestinationPort.Parse(selector.Value, out string? error) ?? throw new ViaException($"rule {selector}: {error}");
        var ports = new Kernel.Netlink.PortRange(port.First, port.Last);
        if (!ports.IsValid)
            throw new ViaException($"rule {selector}: the kernel's routing rules take ports up to {Kernel.Netlink.PortRange.MaxLast} (a range may not end at 65535); nothing was changed");
        return (port, ports);
    }

    /// <summary>The ip rules of a destination-port rule on the route, IPv4 and IPv6.</summary>
    public static List<HostChange> PortRules(ActiveRoute route, RuleSelector selector)
    {
        var (port, ports) = PortsOf(selector);
        var numbers = RouteFollow.Numbers(route);
        return [.. new[] { System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.AddressFamily.InterNetworkV6 }.Select(family =>
            (HostChange)new AddPortRule(new Kernel.Netlink.Rule(family, numbers.Priority + 1, numbers.Table, IpProtocol: port.ProtocolNumber, DestinationPorts: ports, Protocol: Planner.Protocol)))];
    }

    /// <summary>Every standing rule, with its route (read-only: no lock, no root needed).</summary>
    public static List<RuleEntry> List() =>
        [.. RouteRegistry.All().OrderBy(r => r.Table).SelectMany(r => r.Rules.Select(rule => new RuleEntry(rule, r)))];

    /// <summary>The rule of this selector (by the id a user or group name resolves to now, or as written), or null.</summary>
    public static RuleEntry? Find(RuleSelector selector)
    {
        StandingRule probe;
        try { probe = Resolve(selector, StandingRule.Cli); }
        catch (ViaException) { probe = new StandingRule(selector, StandingRule.Cli, null); }
        return FindIn(RouteRegistry.All(), probe);
    }

    /// <summary>
    /// Takes the rule off its route: its map entry goes (the route's rule program with its last
    /// one), and the route goes too when nothing else holds it. Throws <see cref="ViaException"/> when there is no such rule.
    /// </summary>
    /// <returns>The rule as it was, and whether its route was removed.</returns>
    public static (RuleEntry Removed, bool RouteRemoved) Delete(RuleSelector selector, SessionOutput output)
    {
        using (RouteRegistry.Lock(output.Note))
        {
            var entry = Find(selector) ?? throw new ViaException($"there is no rule {selector}; 'via rule ls' lists them");
            var route = entry.Route;
            var rules = route.Rules.Where(r => r != entry.Rule).ToList();
            var program = route.Changes.OfType<AttachRuleProgram>().FirstOrDefault();
            bool lastProgramRule = program is not null && !rules.Any(r => r.How == "ebpf");
            // Journal first: the rule is gone from it before its entry goes; the program stays listed until it is detached.
            Journal.Write(route with { Rules = rules });
            if (entry.Rule.How == "ip-rule")
            {
                var ports = PortRules(route, entry.Selector).Where(route.Changes.Contains).ToList();
                using var host = new Host();
                var leftovers = Applier.Undo(host, ports, () => output.Say("- ip rule del ... " + entry.Selector));
                foreach (var l in leftovers) output.Note("could not undo: " + l);
                route = route with { Changes = route.Changes.Where(c => !ports.Contains(c) || leftovers.Any(l => l.Change == c)).ToList() };
                Journal.Write(route with { Rules = rules });
            }
            else if (program is not null)
            {
                if (lastProgramRule)
                {
                    using var host = new Host();
                    var leftovers = Applier.Undo(host, [program], () => output.Say("- " + program.UndoCommand));
                    foreach (var l in leftovers) output.Note("could not undo: " + l);
                    if (leftovers.Count == 0) Journal.Write(route with { Rules = rules, Changes = route.Changes.Where(c => c != program).ToList() });
                }
                else
                {
                    RemoveEntry(program, entry.Rule, output);
                }
            }
            var (outcome, problems) = RouteRegistry.Leave(route.Id, ProcessIdentity.Self);
            foreach (var p in problems) output.Note(p);
            return (entry, outcome == RouteRegistry.Outcome.Removed);
        }
    }

    /// <summary>The rule with its user or group name resolved to the id it has now. Throws <see cref="ViaException"/> for one that is unknown.</summary>
    public static StandingRule Resolve(RuleSelector selector, string origin)
    {
        if (origin is not (StandingRule.Cli or StandingRule.Config)) throw new ArgumentException($"origin '{origin}' is neither {StandingRule.Cli} nor {StandingRule.Config}", nameof(origin));
        uint? id = selector.Kind switch
        {
            SelectorKind.User => Credentials.Lookup(selector.Value)?.Uid
                ?? throw new ViaException($"no user '{selector.Value}' (not in /etc/passwd nor any other source of the name service); nothing was changed"),
            SelectorKind.Group => Credentials.LookupGroup(selector.Value)?.Gid
                ?? throw new ViaException($"no group '{selector.Value}' (not in /etc/group nor any other source of the name service); nothing was changed"),
            _ => null,
        };
        return new StandingRule(selector, origin, id);
    }

    private static RuleEntry? FindIn(IEnumerable<ActiveRoute> routes, StandingRule rule)
    {
        foreach (var route in routes)
        {
            foreach (var r in route.Rules)
            {
                if (r.Selector == rule.Selector || (r.Selector.Kind == rule.Selector.Kind && r.Id is not null && r.Id == rule.Id))
                    return new RuleEntry(r, route);
            }
        }
        return null;
    }

    /// <summary>Whether the route asked for is <paramref name="route"/> as far as the request says (device, and gateway, source and table when given).</summary>
    private static bool SameRoute(ActiveRoute route, RouteRequest request) =>
        route.Device == request.Device
        && (request.Gateway is null || route.RequestedGateway == request.Gateway.ToString())
        && (request.Source is null || route.RequestedSource == request.Source.ToString())
        && (request.Table is null || route.Table == request.Table);

    private static void SetEntry(AttachRuleProgram program, StandingRule rule, uint mark, SessionOutput output)
    {
        if (rule.How != "ebpf") return;
        using var map = program.OpenMap(rule.Selector.Kind) ?? throw new ViaException($"the rule program {program.Prefix} of mark 0x{mark:x} is not attached at the cgroup2 root");
        BpfSyscall.UpdateElement(map, RuleProgram.Key(rule.Selector.Kind, rule.Selector.Value, rule.Id), BitConverter.GetBytes(mark), $"map {program.Prefix}{RuleProgram.MapLetter(rule.Selector.Kind)}");
        output.Say($"+ bpftool map update name {program.Prefix}{RuleProgram.MapLetter(rule.Selector.Kind)} key <{rule.Selector}{(rule.Id is { } id ? $" = {id}" : "")}> value 0x{mark:x}");
    }

    private static void RemoveEntry(AttachRuleProgram program, StandingRule rule, SessionOutput output)
    {
        if (rule.How != "ebpf") return;
        using var map = program.OpenMap(rule.Selector.Kind);
        if (map is null) return; // the program is gone, and the entry with it
        BpfSyscall.DeleteElement(map, RuleProgram.Key(rule.Selector.Kind, rule.Selector.Value, rule.Id), $"map {program.Prefix}{RuleProgram.MapLetter(rule.Selector.Kind)}");
        output.Say($"- bpftool map delete name {program.Prefix}{RuleProgram.MapLetter(rule.Selector.Kind)} key <{rule.Selector}>");
    }
}
