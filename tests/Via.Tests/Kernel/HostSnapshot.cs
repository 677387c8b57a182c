using System.Text.Json;
using Via.Cli.Commands.Demo;
using Via.Kernel.Cgroups;

namespace Via.Tests.Kernel;

/// <summary>
/// What via could leave behind, read with independent tools: rules and routes (all tables, both
/// families) of the test's host namespace and of the root namespace, cgroups in via's subtree, and
/// eBPF programs named via_*. Two snapshots are equal when the host is exactly as it was.
/// </summary>
public sealed record HostSnapshot(string NamespaceRules, string NamespaceRoutes, string RootRules, string Cgroups, string Programs, string Journals)
{
    public static HostSnapshot Take(Topology t) => new(
        Text("ip", "-n", t.Host, "rule") + Text("ip", "-n", t.Host, "-6", "rule"),
        Text("ip", "-n", t.Host, "route", "show", "table", "all") + Text("ip", "-n", t.Host, "-6", "route", "show", "table", "all"),
        Text("ip", "rule") + Text("ip", "-6", "rule"),
        ViaCgroups(),
        ViaPrograms(),
        string.Join('\n', Directory.Exists("/run/via/routes") ? Directory.EnumerateFiles("/run/via/routes").Order() : Enumerable.Empty<string>()));

    /// <summary>Asserts the host is as <paramref name="before"/>; waits a little, since the kernel frees detached programs asynchronously.</summary>
    public static void AssertUnchanged(HostSnapshot before, Topology t)
    {
        HostSnapshot now = Take(t);
        for (int i = 0; i < 30 && now != before; i++)
        {
            Thread.Sleep(100);
            now = Take(t);
        }
        Assert.Equal(before.NamespaceRules, now.NamespaceRules);
        Assert.Equal(before.NamespaceRoutes, now.NamespaceRoutes);
        Assert.Equal(before.RootRules, now.RootRules);
        Assert.Equal(before.Cgroups, now.Cgroups);
        Assert.Equal(before.Programs, now.Programs);
        Assert.Equal(before.Journals, now.Journals);
    }

    private static string Text(string file, params string[] args)
    {
        var (code, output, error) = Topology.Run(file, args);
        Assert.True(code == 0, $"{file} {string.Join(' ', args)}: {error}");
        return output;
    }

    private static string ViaCgroups()
    {
        var lines = new List<string>();
        foreach (var mount in Cgroup2.FindMounts())
        {
            string root = System.IO.Path.Combine(mount, "via");
            if (!Directory.Exists(root)) continue;
            lines.Add(root);
            lines.AddRange(Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories));
        }
        return string.Join('\n', lines.Order());
    }

    private static string ViaPrograms()
    {
        var (code, output, error) = Topology.Run("bpftool", ["-j", "prog", "show"]);
        Assert.True(code == 0, "bpftool prog show: " + error + " (install bpftool: apt-get install bpftool)");
        using var doc = JsonDocument.Parse(output);
        return string.Join('\n', doc.RootElement.EnumerateArray()
            .Where(p => p.TryGetProperty("name", out var n) && n.GetString()!.StartsWith("via_", StringComparison.Ordinal))
            .Select(p => $"{p.GetProperty("id").GetInt64()} {p.GetProperty("name").GetString()}"));
    }
}
