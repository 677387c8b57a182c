using Via.Kernel;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Mechanisms.Rules;
using Via.Planning;

namespace Via.Engine;

/// <summary>What <c>via up NAME</c> did: the route, and whether it was up already (then nothing changed).</summary>
public sealed record UpOutcome(ActiveRoute Route, bool WasUp);

/// <summary>
/// The routes of via.conf (<c>[route NAME]</c>): kept up without a program (<c>via up</c>, <c>via apply</c>),
/// and launched into (<c>via run --route</c>). A standing route is an ordinary route of the journal
/// with its <see cref="ActiveRoute.Name"/>, <see cref="ActiveRoute.Standing"/> and
/// <see cref="ActiveRoute.Definition"/>: its name is part of its key, so a launch into it finds it
/// with <see cref="RouteRegistry.FindShared"/> and joins it, which costs no set-up.
/// </summary>
public static class NamedRoutes
{
    /// <summary>What the mechanism of a route with no program is chosen for (auto: the first that works here).</summary>
    private static readonly ProgramImage NoProgram = new("(a standing route: no program)", false, false);

    /// <summary>The standing routes of this network namespace, by name.</summary>
    public static List<ActiveRoute> Standing(IEnumerable<ActiveRoute> routes, string networkNamespace) =>
        routes.Where(r => r.Standing && r.Name is not null && r.NetworkNamespace == networkNamespace).ToList();

    /// <summary>The standing route of that name here, or null.</summary>
    public static ActiveRoute? StandingNamed(string name) =>
        Standing(RouteRegistry.All(), Namespaces.CurrentNetwork()).FirstOrDefault(r => r.Name == name);

    /// <summary>
    /// Keeps the route up without a program. Idempotent: a standing route of that name with the same
    /// definition that still holds is left as it is (<see cref="UpOutcome.WasUp"/>). One with another
    /// definition is refused (<c>via apply</c> re-makes it); one whose rules are gone is removed and made again.
    /// A launch into the same route that runs now is joined, and its route becomes the standing one.
    /// </summary>
    public static UpOutcome Up(NamedRoute named, SessionOutput output, Fault fault)
    {
        using (RouteRegistry.Lock(output.Note))
        {
            if (StandingNamed(named.Name) is { } up)
            {
                if (up.Definition != named.Definition)
                    throw new ViaException($"route {named.Name} is up ({up.Id}) as '{up.Definition}', and the file now says '{named.Definition}'; 'via apply' re-makes it, or 'via down {named.Name}' first");
                if (RouteRegistry.StandingHolds(up)) return new UpOutcome(up, true);
                // Its fwmark rule is gone (deleted by another program): what is left goes, and the route is made again.
                output.Note($"route {named.Name} ({up.Id}) lost its rules; making it again");
                foreach (var p in Teardown.Run(up).Problems(up.Id)) output.Note(p);
            }
        }
        var session = RouteSession.Open(new SessionRequest(named.Request, named.Method, named.Dns, NoProgram), output, fault);
        using (RouteRegistry.Lock(output.Note))
        {
            var current = Journal.Read(Journal.PathOf(session.Route.Id));
            var standing = current with
            {
                Standing = true,
                Name = named.Name,
                Definition = named.Definition,
                // via up is no user of it: the route stays without one.
                Users = [.. current.Users.Where(u => u != ProcessIdentity.Self && u.IsAlive)],
            };
            Journal.Write(standing);
            // Its keeper: the route follows IFACE while it stands, with no program's via to watch it.
            Reaper.Start(standing);
            return new UpOutcome(standing, false);
        }
    }

    /// <summary>
    /// What 'via run --route NAME' asks for: the file's route, with its method. With method auto and the
    /// standing route up, its mechanism, if it can serve the program: the same key, so the launch joins it.
    /// </summary>
    public static SessionRequest Launch(NamedRoute named, ProgramImage program)
    {
        string method = named.Method;
        if (method == MechanismChoice.Auto && StandingNamed(named.Name) is { } up
            && Registry.Find(up.Mechanism) is { } mechanism && mechanism.Refuse(program) is null)
            method = up.Mechanism;
        return new SessionRequest(named.Request, method, named.Dns, program);
    }
}

/// <summary>One change <c>via apply</c> would make: what, to which object, in words, and the doing of it.</summary>
/// <param name="Verb">"up" (make), "remake" (the definition changed, or its rules are gone), "repair" (put back what the kernel dropped),
/// "down" (left the file), "keep" (its keeper was gone); for standing rules "rule-add", "rule-move" (to the route the file now says) and "rule-del" (left the file).</param>
/// <param name="Subject">What it is done to: "route work".</param>
/// <param name="Execute">Makes the change; throws (<see cref="Failure.Describe"/> says it) when the host refuses it.</param>
public sealed record ApplyAction(string Verb, string Subject, string Description, Action Execute);

/// <summary>
/// <c>via apply</c>: the actions that make the host match via.conf, from what the file wants and what
/// via has made. Each kind of object is a provider of actions (routes now; standing rules slot in as
/// one more): each compares only its own objects, and touches nothing else.
/// </summary>
public static class ApplyPlanner
{
    /// <summary>Every action, routes first (a rule may go by a route of the file).</summary>
    public static List<ApplyAction> Plan(ViaConfig config, SessionOutput output, Fault fault)
    {
        string here = Namespaces.CurrentNetwork();
        List<ApplyAction> routes = [.. Routes(config, NamedRoutes.Standing(RouteRegistry.All(), here), RouteRegistry.StandingHolds, RouteWatcher.Drift, output, fault)];
        var remade = routes.Where(a => a.Verb is "remake" or "down").Select(a => a.Subject).ToHashSet(StringComparer.Ordinal);
        var rules = StandingRules.List().Where(e => e.Route.NetworkNamespace == here).ToList();
        var touched = routes.Select(a => a.Subject).ToHashSet(StringComparer.Ordinal);
        var kept = RouteRegistry.All().Where(r => r.NetworkNamespace == here && !r.Down && (r.Standing && r.Name is not null && !touched.Contains($"route {r.Name}") || r.Rules.Count > 0));
        return [.. routes, .. Rules(config, rules, name => remade.Contains($"route {name}"), output, fault), .. Keepers(kept, Reaper.Running)];
    }

    /// <summary>
    /// A standing route, or one held by standing rules, has a keeper (its reaper: its watcher keeps the
    /// route following IFACE). One whose keeper is gone (killed) gets a new one ("keep").
    /// </summary>
    public static IEnumerable<ApplyAction> Keepers(IEnumerable<ActiveRoute> routes, Func<ActiveRoute, bool> running)
    {
        foreach (var route in routes.Where(r => !running(r)))
        {
            string subject = route.Name is { } name ? $"route {name}" : $"route {route.Id}";
            yield return new ApplyAction("keep", subject, $"start the keeper of {subject} ({route.Id}, dev {route.Device}): none runs, so nothing keeps it following {route.Device}",
                () => Reaper.Start(route));
        }
    }

    /// <summary>
    /// The standing rules: every <c>[rule]</c> of the file is put on its route (a route of the file, or
    /// a device); via's rules that came from the file (origin config) and that it no longer has are
    /// deleted. A rule made by hand ('via rule add', origin cli) is never touched, unless the file puts
    /// the same selector on another route: the file wins, and the rule moves. A rule whose route of the
    /// file is made again (<paramref name="remade"/>) moves to the new one. Pure but for the actions.
    /// </summary>
    public static IEnumerable<ApplyAction> Rules(ViaConfig config, IReadOnlyList<RuleEntry> current, Func<string, bool> remade, SessionOutput output, Fault fault)
    {
        foreach (var rule in config.Rules)
        {
            var request = rule.Route is { } name ? config.Route(name)!.Request : new RouteRequest(rule.Device!);
            string way = rule.Route is { } n ? $"route {n}" : $"dev {rule.Device}";
            string subject = $"rule {rule.Selector}";
            var on = current.FirstOrDefault(e => e.Selector == rule.Selector);
            if (on is null)
            {
                yield return new ApplyAction("rule-add", subject, $"add {subject} through {way}", () => StandingRules.Add(rule.Selector, request, StandingRule.Config, output, fault));
                continue;
            }
            bool placed = rule.Route is { } wanted
                ? on.Route.Name == wanted && on.Route.Standing && !on.Route.Down && !remade(wanted)
                : on.Route.Name is null && on.Route.Device == rule.Device && !on.Route.Down;
            if (placed) continue;
            yield return new ApplyAction("rule-move", subject, $"move {subject} from route {on.Route.Id} (dev {on.Route.Device}) to {way}", () =>
            {
                // Off the old route first ('rule add' refuses a selector that is on another route): for
                // that moment, a socket the rule picks out takes the default path.
                StandingRules.Delete(rule.Selector, output);
                StandingRules.Add(rule.Selector, request, StandingRule.Config, output, fault);
            });
        }
        foreach (var gone in current.Where(e => e.Rule.Origin == StandingRule.Config && !config.Rules.Any(r => r.Selector == e.Selector)))
            yield return new ApplyAction("rule-del", $"rule {gone.Selector}", $"delete rule {gone.Selector} (route {gone.Route.Id}, dev {gone.Route.Device}): it is no longer in {config.Source}",
                () => StandingRules.Delete(gone.Selector, output));
    }

    /// <summary>
    /// The routes: every <c>[route NAME]</c> of the file is a standing route; via's standing named routes
    /// (<paramref name="current"/>, of this network namespace) that the file no longer has are taken down,
    /// those whose definition changed or whose rules are gone are made again. Routes of 'via run' (with
    /// or without --route) and of 'via attach' are not standing: never touched. A standing route has no
    /// program whose via watches it: what the kernel dropped meanwhile (its interface went and came back)
    /// is put back, as a watcher would. Pure but for <paramref name="holds"/>
    /// (<see cref="RouteRegistry.StandingHolds"/>) and <paramref name="drift"/> (<see cref="RouteWatcher.Drift"/>).
    /// </summary>
    public static IEnumerable<ApplyAction> Routes(ViaConfig config, IReadOnlyList<ActiveRoute> current, Func<ActiveRoute, bool> holds, Func<ActiveRoute, string?> drift,
        SessionOutput output, Fault fault)
    {
        foreach (var named in config.Routes)
        {
            var up = current.FirstOrDefault(r => r.Name == named.Name);
            string subject = $"route {named.Name}";
            if (up is null)
            {
                yield return new ApplyAction("up", subject, $"make {subject} ({named.Definition})", () => NamedRoutes.Up(named, output, fault));
                continue;
            }
            string? why = up.Definition != named.Definition ? $"its definition changed: was '{up.Definition}', is '{named.Definition}'"
                : !holds(up) ? "its rules are gone" : null;
            if (why is not null)
                yield return new ApplyAction("remake", subject, $"make {subject} again ({up.Id}): {why}", () =>
                {
                    TakeDown(up, output);
                    NamedRoutes.Up(named, output, fault);
                });
            else if (drift(up) is { } changed)
                yield return new ApplyAction("repair", subject, $"repair {subject} ({up.Id}): {changed}", () => RouteWatcher.CheckOnce(up.Id, output.Note));
        }
        foreach (var gone in current.Where(r => config.Route(r.Name!) is null))
            yield return new ApplyAction("down", $"route {gone.Name}", $"remove route {gone.Name} ({gone.Id}, dev {gone.Device}): it is no longer in {config.Source}", () => TakeDown(gone, output));
    }

    /// <summary>Takes a standing route down as 'via down' does (its programs, if any, are cut off), under via's lock; throws when something is left.</summary>
    private static void TakeDown(ActiveRoute route, SessionOutput output)
    {
        using (RouteRegistry.Lock(output.Note))
        {
            ActiveRoute now;
            try { now = Journal.Read(Journal.PathOf(route.Id)); }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return; } // gone meanwhile
            var (outcome, result) = Teardown.Down(now);
            output.Say($"{now.Id}: {outcome}");
            if (!result.Complete) throw new ViaException(string.Join("; ", result.Problems(now.Id)));
        }
    }
}
