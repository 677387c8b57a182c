using System.Net.Sockets;
using Via.Kernel;
using Via.Kernel.Bpf;
using Via.Kernel.Cgroups;
using Via.Kernel.Netlink;
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
    public sealed record Removal(string What, string Why, List<string> Failures);

    public static List<Removal> Collect(byte protocol, bool dryRun)
    {
        var removed = new List<Removal>();
        var journals = RouteRegistry.All();
        foreach (var route in journals)
        {
            if (!RouteRegistry.IsAbandoned(route)) continue;
            string what = $"route {route.Id} (dev {route.Device}, table {route.Table}, mark 0x{route.Mark:x})";
            removed.Add(new Removal(what, route.Down ? "taken down, no process left" : "no via and no process left in it", dryRun ? [] : Teardown.Run(route)));
        }

        // Journals that cannot be read: what they described is found below by its tags.
        foreach (var (path, why) in Journal.Unreadable().ToList())
        {
            if (!dryRun) File.Delete(path);
            removed.Add(new Removal($"journal {path}", why, []));
        }

        // Tagged objects no journal accounts for, in this network namespace and the cgroup tree.
        var known = RouteRegistry.All();
        var knownCgroups = known.Where(r => r.Cgroup is not null).Select(r => Path.GetFileName(r.Cgroup!)).ToHashSet();
        string subtree = Path.Combine(CgroupPaths.Root(), CgroupBpfMechanism.Subtree);
        if (Directory.Exists(subtree))
        {
            foreach (var dir in Directory.EnumerateDirectories(subtree))
            {
                if (knownCgroups.Contains(Path.GetFileName(dir)) || Cgroup2.IsPopulated(dir)) continue;
                var change = new CreateCgroup(dir);
                removed.Add(new Removal($"cgroup {dir}", "no journal and no process", dryRun ? [] : Applier.Undo(new Host(), [change, new AttachSocketMark(dir, 0), new AttachSetsockoptGuard(dir, 0), new Guard.AttachEgressGuard(dir, 0, "")])));
            }
            if (!dryRun && Directory.Exists(subtree) && !Directory.EnumerateDirectories(subtree).Any())
            {
                try { Cgroup2.Remove(subtree); } catch (KernelException) { }
            }
        }

        string here = Namespaces.CurrentNetwork();
        var tables = known.Where(r => r.NetworkNamespace == here).Select(r => r.Table).ToHashSet();
        using var host = new Host();
        foreach (var family in new[] { AddressFamily.InterNetwork, AddressFamily.InterNetworkV6 })
        {
            var tagged = host.Rtnl.Rules(family).Where(r => r.Protocol == protocol && !tables.Contains(r.Table)).Select(r => (HostChange)new AddRule(r))
                .Concat(host.Rtnl.Routes(family).Where(r => r.Protocol == protocol && !tables.Contains(r.Table)).Select(r => new AddRoute(r)));
            foreach (var change in tagged)
                removed.Add(new Removal(Describe(change), "via's tag, no journal", dryRun ? [] : Applier.Undo(host, [change])));
        }
        return removed;
    }

    /// <summary>"ip rule pref ...", "ip -6 route unreachable default ...": the object as ip would show it.</summary>
    private static string Describe(HostChange change) => change.Command.Replace(" add ", " ", StringComparison.Ordinal);
}
