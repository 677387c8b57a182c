using System.Text.Json;
using Via.Cli.Commands.Demo;

namespace Via.Tests.Kernel;

/// <summary>
/// What via could leave behind, read with independent tools: rules and routes (all tables, both
/// families) of the test's host namespace and of the root namespace, and what belongs to the class
/// that owns the topology (<see cref="ClassState"/>): the cgroups in its subtree, the eBPF programs
/// attached to them, its journals; and the nftables tables and src_valid_mark settings of the host
/// namespace. Two snapshots are equal when the host is exactly as it was.
/// Programs are those attached in the class's subtree, not every via_* program of the host: other
/// classes, and other worktrees' tests, load and free theirs at the same time. A program of the
/// class left attached keeps its cgroup (and shows here); one held by a live process only is not
/// seen, but the tests see their via processes exit.
/// </summary>
public sealed record HostSnapshot(string NamespaceRules, string NamespaceRoutes, string RootRules, string Cgroups, string Programs, string Journals, string Nftables = "")
{
    public static HostSnapshot Take(Topology t)
    {
        var state = TopologyFixture.StateOf(t);
        return new(
            Text("ip", "-n", t.Host, "rule") + Text("ip", "-n", t.Host, "-6", "rule"),
            Text("ip", "-n", t.Host, "route", "show", "table", "all") + Text("ip", "-n", t.Host, "-6", "route", "show", "table", "all"),
            Text("ip", "rule") + Text("ip", "-6", "rule"),
            ViaCgroups(state),
            ViaPrograms(state),
            string.Join('\n', state.Journals()),
            Text("ip", "netns", "exec", t.Host, "sh", "-c", "nft list tables; sysctl -a 2>/dev/null | grep src_valid_mark"));
    }

    /// <summary>
    /// Asserts the host is as <paramref name="before"/>; polls a little first, since the kernel frees
    /// detached programs and cgroups asynchronously. With <paramref name="viaRoutesOnly"/>, of the
    /// namespace's routes only via's own (proto 86) are compared: for a test that changed the others itself.
    /// </summary>
    public static void AssertUnchanged(HostSnapshot before, Topology t, bool viaRoutesOnly = false)
    {
        if (viaRoutesOnly) before = before.WithViaRoutesOnly();
        HostSnapshot Now() => viaRoutesOnly ? Take(t).WithViaRoutesOnly() : Take(t);
        HostSnapshot now = Now();
        try { Via.WaitUntil(() => (now = Now()) == before, "the host to be as it was", TimeSpan.FromSeconds(3)); }
        catch (TimeoutException) { } // the assertions below say what differs
        Assert.Equal(before.NamespaceRules, now.NamespaceRules);
        Assert.Equal(before.NamespaceRoutes, now.NamespaceRoutes);
        Assert.Equal(before.RootRules, now.RootRules);
        Assert.Equal(before.Cgroups, now.Cgroups);
        Assert.Equal(before.Programs, now.Programs);
        Assert.Equal(before.Journals, now.Journals);
        Assert.Equal(before.Nftables, now.Nftables);
    }

    /// <summary>This snapshot with, of the namespace's routes, only via's (proto 86).</summary>
    public HostSnapshot WithViaRoutesOnly() =>
        this with { NamespaceRoutes = string.Join('\n', NamespaceRoutes.Split('\n').Where(l => l.Contains(" proto 86", StringComparison.Ordinal))) };

    private static string Text(string file, params string[] args)
    {
        var (code, output, error) = Topology.Run(file, args);
        Assert.True(code == 0, $"{file} {string.Join(' ', args)}: {error}");
        return output;
    }

    private static string ViaCgroups(ClassState state)
    {
        var lines = new List<string>();
        foreach (var root in state.CgroupSubtrees().Where(Directory.Exists))
        {
            lines.Add(root);
            lines.AddRange(Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories));
        }
        return string.Join('\n', lines.Order());
    }

    private static string ViaPrograms(ClassState state)
    {
        var lines = new List<string>();
        foreach (var root in state.CgroupSubtrees().Where(Directory.Exists))
        {
            var (code, output, error) = Topology.Run("bpftool", ["-j", "cgroup", "tree", root]);
            Assert.True(code == 0, "bpftool cgroup tree: " + error + " (install bpftool: apt-get install bpftool)");
            using var doc = JsonDocument.Parse(output);
            foreach (var cgroup in doc.RootElement.EnumerateArray())
                foreach (var p in cgroup.GetProperty("programs").EnumerateArray())
                    lines.Add($"{cgroup.GetProperty("cgroup").GetString()} {p.GetProperty("id").GetInt64()} {p.GetProperty("attach_type").GetString()} {p.GetProperty("name").GetString()}");
        }
        // The class's standing rules' programs at the hierarchy's root (shared by every class: only its own, by its owner tag).
        if (global::Via.Mechanisms.Cgroup.CgroupPaths.Find() is { } top)
        {
            string owner = global::Via.Mechanisms.Changes.AttachRuleProgram.OwnerOf(state.StateDirectory);
            foreach (var p in global::Via.Mechanisms.Changes.AttachRuleProgram.Attached(top).Where(p => p.Owner == owner))
                lines.Add($"/ {p.Id} sock_create via_rule {p.Prefix}");
        }
        return string.Join('\n', lines.Order());
    }
}
