using System.Net.Sockets;
using Via.Kernel;
using Via.Kernel.Bpf;
using Via.Kernel.Cgroups;
using Via.Kernel.Netlink;
using Via.Kernel.Processes;
using Via.Mechanisms.Cgroup;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms;

/// <summary>
/// <c>via gc</c>: removes what via made that no live process needs: routes whose via and programs
/// are gone (a crash, a SIGKILL, a lost reaper), and via-tagged objects no journal knows (a /run
/// wiped under a live host): cgroups under via's subtree, and rules and routes with via's protocol.
/// Objects without via's tag are never touched. Runs under via's lock.
/// </summary>
public static class Collector
{
    /// <param name="Kept">True when the object could not be (or would not be) removed as a whole: <paramref name="Why"/> says why.</param>
    public sealed record Removal(string What, string Why, List<string> Failures, bool Kept = false);

    /// <summary>
    /// Collects. A dry run reads only: it never mounts cgroup2 or creates anything (a cgroup2
    /// that is not mounted here is then not swept).
    /// </summary>
    public static List<Removal> Collect(byte protocol, bool dryRun)
    {
        var removed = new List<Removal>();
        var journals = RouteRegistry.All();
        foreach (var route in journals)
        {
            // A standing route (via up, via apply) is kept without a program, while it holds.
            if (route.Standing && RouteRegistry.StandingHolds(route)) continue;
            if (Judge(route, u => u.IsAlive, () => Teardown.Occupancy(route, mayMount: !dryRun)) is not { } verdict) continue;
            if (verdict.Kept || dryRun)
            {
                removed.Add(verdict);
                continue;
            }
            var result = Teardown.Run(route);
            var leftovers = result.Leftovers.Select(l => l.ToString()).ToList();
            removed.Add(result.Kept is { } kept ? new Removal(verdict.What, kept, leftovers, Kept: true) : verdict with { Failures = leftovers });
        }

        // Journals that cannot be read: what they described is found below by its tags.
        // One that cannot be read at all is kept: it may be whole, and its route not visible by tags
        // (made in another network namespace).
        foreach (var (path, why, damaged) in Journal.Unreadable().ToList())
        {
            if (!damaged)
            {
                removed.Add(new Removal($"journal {path}", why, [], Kept: true));
                continue;
            }
            if (!dryRun) File.Delete(path);
            removed.Add(new Removal($"journal {path}", why, []));
        }

        // Tagged objects no journal accounts for, in this network namespace and the cgroup tree.
        var known = RouteRegistry.All();
        // Only where the journals account for the whole subtree (see Journal.OwnsCgroupSubtree).
        string? root = !Journal.OwnsCgroupSubtree ? null : dryRun ? CgroupPaths.FindForReading() : CgroupPaths.Root();
        string? subtree = root is null ? null : Path.Combine(root, RouteCgroups.Subtree);
        if (subtree is not null && Directory.Exists(subtree))
        {
            foreach (var dir in StrayCgroups(Directory.EnumerateDirectories(subtree), known, MayBePopulated))
            {
                var change = new CreateCgroup(dir);
                // Removing the cgroup releases whatever programs any mechanism attached to it.
                removed.Add(new Removal($"cgroup {dir}", "no journal and no process", dryRun ? [] : Applier.Undo(new Host(), [change]).Select(l => l.ToString()).ToList()));
            }
            if (!dryRun && Directory.Exists(subtree) && !Directory.EnumerateDirectories(subtree).Any())
            {
                try { Cgroup2.Remove(subtree); } catch (KernelException) { }
            }
        }

        // What each mechanism keeps outside the cgroup, routes and rules (a tagger process, say).
        foreach (var mechanism in Registry.All)
            removed.AddRange(mechanism.Sweep(known, dryRun));
        // via's nftables tables (the nft, netcls and netns mechanisms make one per route).
        removed.AddRange(NftTable.Sweep(known, dryRun));
        removed.AddRange(SweepRulePrograms(known, dryRun));

        string here = Namespaces.CurrentNetwork();
        using var host = new Host();
        // Named as ip names them: by the link's name here (a route's link always exists while the route does).
        var links = host.Rtnl.Links().ToDictionary(l => l.Index, l => l.Name);
        foreach (var family in new[] { AddressFamily.InterNetwork, AddressFamily.InterNetworkV6 })
        {
            foreach (var change in StrayRulesAndRoutes(protocol, known, here, host.Rtnl.Rules(family), host.Rtnl.Routes(family), links))
                removed.Add(new Removal(Describe(change), "via's tag, no journal", dryRun ? [] : Applier.Undo(host, [change]).Select(l => l.ToString()).ToList()));
        }
        return removed;
    }

    /// <summary>
    /// Rule programs of this state directory's (their maps' names carry <see cref="AttachRuleProgram.StateOwner"/>)
    /// attached at the cgroup2 root that no journal names: their route is gone (a wiped /run). Another
    /// state directory's are never touched: the root is shared by all of them.
    /// </summary>
    private static IEnumerable<Removal> SweepRulePrograms(IEnumerable<ActiveRoute> known, bool dryRun)
    {
        string? root = dryRun ? CgroupPaths.FindForReading() : CgroupPaths.Root();
        if (root is null) return [];
        var prefixes = known.SelectMany(r => r.Changes.OfType<AttachRuleProgram>()).Select(c => c.Prefix).ToHashSet();
        string owner = AttachRuleProgram.StateOwner;
        var removed = new List<Removal>();
        foreach (var stray in StrayRulePrograms(AttachRuleProgram.Attached(root), prefixes, owner))
        {
            var failures = new List<string>();
            if (!dryRun)
            {
                try { CgroupPrograms.DetachIds(root, BpfAttachType.CgroupInetSockCreate, [stray.Id]); }
                catch (KernelException e) { failures.Add(e.Message); }
            }
            removed.Add(new Removal($"rule program {stray.Id} (maps {stray.Prefix}*) at the cgroup2 root", "via's tag, no journal", failures));
        }
        return removed;
    }

    /// <summary>The rule programs of state directory <paramref name="owner"/> whose maps no journal names.</summary>
    public static IEnumerable<AttachRuleProgram.Found> StrayRulePrograms(IEnumerable<AttachRuleProgram.Found> attached, IReadOnlySet<string> known, string owner) =>
        attached.Where(p => p.Owner == owner && !known.Contains(p.Prefix));

    /// <summary>
    /// What gc does with a route it has a journal of: null to leave it (a user lives, or processes
    /// remain in it); otherwise the removal, or one that is <see cref="Removal.Kept"/> when whether
    /// processes remain cannot be told. Reads nothing itself: <paramref name="alive"/> and
    /// <paramref name="occupancy"/> (asked only when no user lives) do.
    /// </summary>
    public static Removal? Judge(ActiveRoute route, Func<ProcessIdentity, bool> alive, Func<Membership> occupancy)
    {
        if (route.Users.Any(alive)) return null;
        string what = $"route {route.Id} (dev {route.Device}, table {route.Table}, mark 0x{route.Mark:x})";
        var membership = occupancy();
        // Not knowing is not "empty": its programs may run, and would lose their route.
        if (membership.Unknown is { } unknown) return new Removal(what, $"cannot tell whether processes remain: {unknown}", [], Kept: true);
        if (membership.Populated) return null;
        return new Removal(what, route.Down ? "taken down, no process left" : "no via and no process left in it", []);
    }

    /// <summary>
    /// The cgroups of via's subtree that no journal accounts for (by name: the same cgroup may be
    /// recorded under another mount) and that no process is, or may be, in.
    /// </summary>
    public static IEnumerable<string> StrayCgroups(IEnumerable<string> cgroups, IEnumerable<ActiveRoute> known, Func<string, bool> mayBePopulated)
    {
        var names = known.Where(r => r.Cgroup is not null).Select(r => Path.GetFileName(r.Cgroup!)).ToHashSet();
        return cgroups.Where(dir => !names.Contains(Path.GetFileName(dir)) && !mayBePopulated(dir));
    }

    /// <summary>
    /// The rules and routes of network namespace <paramref name="here"/> that carry via's tag
    /// (<paramref name="protocol"/>) in a table no journal of that namespace names, as the changes that
    /// would have made them (routes named by their link's name in <paramref name="links"/>). Rules
    /// come most selective first (see <see cref="Rule.SelectorCount"/>): deleting a less selective one
    /// first could take a more selective one in its place and leave itself behind.
    /// </summary>
    public static IEnumerable<HostChange> StrayRulesAndRoutes(byte protocol, IEnumerable<ActiveRoute> known, string here,
        IEnumerable<Rule> rules, IEnumerable<Route> routes, IReadOnlyDictionary<int, string> links)
    {
        var tables = known.Where(r => r.NetworkNamespace == here).Select(r => r.Table).ToHashSet();
        return rules.Where(r => r.Protocol == protocol && !tables.Contains(r.Table)).OrderByDescending(r => r.SelectorCount).Select(r => (HostChange)new AddRule(r))
            .Concat(routes.Where(r => r.Protocol == protocol && !tables.Contains(r.Table)).Select(r => new AddRoute(r, links.GetValueOrDefault(r.OutputLink))));
    }

    /// <summary>A cgroup whose membership cannot be read is left alone, as if processes were in it.</summary>
    private static bool MayBePopulated(string cgroup)
    {
        try { return Cgroup2.Populated(cgroup) ?? false; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException) { return true; }
    }

    /// <summary>"ip rule pref ...", "ip -6 route unreachable default ...": the object as ip would show it.</summary>
    private static string Describe(HostChange change) => change.Command.Replace(" add ", " ", StringComparison.Ordinal);
}
