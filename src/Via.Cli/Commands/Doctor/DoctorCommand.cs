using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Via.Kernel;
using Via.Kernel.Cgroups;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Mechanisms.Cgroup;
using Via.Planning;

namespace Via.Cli.Commands.Doctor;

/// <summary>'via doctor': what this host offers via, line by line, and why not where it does not.</summary>
public static class DoctorCommand
{
    public static readonly Option<bool> Json = new("--json") { Description = "Print the checks as JSON." };

    public static Command Create()
    {
        var command = new Command("doctor", """
            Check what this host offers via: privileges, cgroup2, each tagging method (cgroup eBPF, ...) and
            which one 'auto' picks, nftables, cgroup v1 net_cls, network namespaces, strict rp_filter, local DNS stubs,
            the mark mask and rule priority via chooses beside other programs' rules (and why), tables of
            other programs in via's range, network daemons that would delete via's rules, and leftovers
            'via gc' would remove.
            Each method ('via run --method') says whether it works here; exits 1 when none does, and says why.
            """) { Json };
        command.SetAction(parse => Run(parse.GetValue(Json)));
        return command;
    }

    public enum Status { Ok, Warn, Fail, Info }

    public sealed record Check(string Name, Status Status, string Detail, bool Blocks = false);

    public static int Run(bool json)
    {
        var checks = Checks().ToList();
        if (json)
        {
            var doc = checks.Select(c => new CheckDocument(c.Name, c.Status.ToString().ToLowerInvariant(), c.Detail, c.Blocks)).ToArray();
            Console.WriteLine(JsonSerializer.Serialize(doc, DoctorJson.Default.CheckDocumentArray));
        }
        else
        {
            foreach (var c in checks)
                Console.WriteLine($"{c.Status.ToString().ToLowerInvariant(),-5} {c.Name,-20} {c.Detail}");
        }
        var blocking = checks.Where(c => c.Blocks).ToList();
        if (blocking.Count == 0) return ExitCodes.Ok;
        if (!json) Console.WriteLine($"via run cannot work here: {string.Join("; ", blocking.Select(b => b.Name + ": " + b.Detail))}");
        return 1;
    }

    private static IEnumerable<Check> Checks()
    {
        bool root = Exec.IsRoot;
        var caps = Capabilities();
        bool netAdmin = caps is { } c1 && (c1 & (1UL << 12)) != 0, sysAdmin = caps is { } c2 && (c2 & (1UL << 21)) != 0;
        yield return root && netAdmin && sysAdmin
            ? new Check("privileges", Status.Ok, "root with CAP_NET_ADMIN and CAP_SYS_ADMIN")
            : new Check("privileges", Status.Fail, root ? "root, but without CAP_NET_ADMIN/CAP_SYS_ADMIN (a restricted container?)" : "not root: 'via run' needs root; run it with sudo", Blocks: true);

        var mounts = Cgroup2.FindMounts();
        string? cgroupRoot = CgroupPaths.Preferred(mounts);
        yield return cgroupRoot switch
        {
            "/sys/fs/cgroup" => new Check("cgroup2", Status.Ok, "unified hierarchy at /sys/fs/cgroup"),
            "/sys/fs/cgroup/unified" => new Check("cgroup2", Status.Ok, "hybrid layout: cgroup2 at /sys/fs/cgroup/unified"),
            { } other => new Check("cgroup2", Status.Ok, $"mounted at {other}"),
            null when File.ReadAllText("/proc/filesystems").Contains("cgroup2") => new Check("cgroup2", Status.Ok, $"not mounted here; via mounts it at {RouteCgroups.PrivateMount} when needed"),
            null => new Check("cgroup2", Status.Fail, "this kernel has no cgroup2 filesystem", Blocks: true),
        };

        // Each mechanism says whether it works here: its cheap probe (what 'auto' consults), and as
        // root its thorough check (loading its eBPF programs, say), which creates nothing.
        using var host = new Host();
        var view = HostView.Read(host);
        var usable = new List<string>();
        foreach (var mechanism in Registry.All)
        {
            var probe = mechanism.Probe(view);
            string? why = !probe.Usable ? probe.Detail : root ? mechanism.Verify(view) : null;
            if (why is null) usable.Add(mechanism.Name);
            yield return why is null
                ? new Check("method " + mechanism.Name, root ? Status.Ok : Status.Info, $"{mechanism.Summary}: {probe.Detail}{(root ? "" : " (not verified: needs root)")}")
                : new Check("method " + mechanism.Name, Status.Warn, why);
        }
        yield return usable.Count > 0
            ? new Check("method auto", Status.Ok, $"'via run' uses {usable[0]} (the first that works; a program it cannot serve gets the next)")
            : new Check("method auto", Status.Fail, "no mechanism works on this host", Blocks: true);

        yield return NativeLibrary.TryLoad("libnftables.so.1", out var nft)
            ? Free(nft, new Check("nftables", Status.Ok, "libnftables.so.1 found"))
            : new Check("nftables", Status.Warn, "libnftables.so.1 not installed (apt-get install libnftables1) - only needed by an nft mechanism");

        bool netCls = ReadOr("/proc/cgroups", "").Split('\n').Any(l => l.StartsWith("net_cls\t", StringComparison.Ordinal) && l.TrimEnd().EndsWith('1'));
        yield return netCls
            ? new Check("cgroup v1 net_cls", Status.Ok, "net_cls controller enabled")
            : new Check("cgroup v1 net_cls", Status.Warn, "net_cls controller not available");

        yield return File.Exists("/proc/self/ns/net")
            ? new Check("network namespaces", Status.Ok, $"supported; via runs in {Namespaces.CurrentNetwork()}")
            : new Check("network namespaces", Status.Warn, "not supported by this kernel");

        foreach (var c in RpFilter()) yield return c;
        yield return Dns();
        foreach (var c in Numbers()) yield return c;
        foreach (var c in NetworkDaemons.Checks(NetworkDaemons.Read())) yield return c;

        if (root)
        {
            // A dry run: reads only, takes no lock (taking it would create it), mounts nothing.
            var leftovers = Collector.Collect(Planner.Protocol, dryRun: true);
            yield return leftovers.Count == 0
                ? new Check("leftovers", Status.Ok, "nothing for 'via gc' to remove")
                : new Check("leftovers", Status.Warn, $"{leftovers.Count} object(s) 'via gc' would remove: {string.Join("; ", leftovers.Take(3).Select(l => l.What))}");
        }
    }

    private static Check Free(nint handle, Check check)
    {
        NativeLibrary.Free(handle);
        return check;
    }

    private static IEnumerable<Check> RpFilter()
    {
        const string conf = "/proc/sys/net/ipv4/conf";
        int all = int.TryParse(ReadOr(Path.Combine(conf, "all", "rp_filter"), "0").Trim(), out int a) ? a : 0;
        var strict = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories(conf))
        {
            string name = Path.GetFileName(dir);
            if (name is "all" or "default" or "lo") continue;
            int own = int.TryParse(ReadOr(Path.Combine(dir, "rp_filter"), "0").Trim(), out int o) ? o : 0;
            if (Math.Max(all, own) == 1) strict.Add(name); // the kernel uses the larger of 'all' and the interface's value
        }
        yield return strict.Count == 0
            ? new Check("rp_filter", Status.Ok, "no interface filters reverse paths strictly")
            : new Check("rp_filter", Status.Info, $"strict on {string.Join(", ", strict)}: handled by via's source rule, no sysctl is changed");
    }

    private static Check Dns()
    {
        var servers = ReadOr("/etc/resolv.conf", "").Split('\n')
            .Select(l => l.Trim().Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 2 && f[0] == "nameserver").Select(f => f[1]).ToList();
        var local = servers.Where(s => IPAddress.TryParse(s, out var ip) && IPAddress.IsLoopback(ip)).ToList();
        if (File.Exists("/var/run/nscd/socket")) local.Add("nscd");
        return local.Count == 0
            ? new Check("dns", Status.Ok, servers.Count == 0 ? "no nameserver in /etc/resolv.conf" : $"resolvers {string.Join(", ", servers)} are queried by the program itself")
            : new Check("dns", Status.Warn, $"local stub resolver ({string.Join(", ", local)}): a routed program's DNS queries are sent by that daemon, out of the default route");
    }

    private static IEnumerable<Check> Numbers()
    {
        Settings settings;
        try { settings = Settings.Load(); }
        catch (PlanException e) { return [new Check("configuration", Status.Fail, e.Message, Blocks: true)]; }
        using var host = new Host();
        var view = HostView.Read(host).WithFirewallMarks();
        var checks = new List<Check>();
        NumberChoice choice;
        try
        {
            // The same choice 'via run' makes (it makes it again under its lock).
            choice = NumberChoice.Choose(settings, view, RouteRegistry.All(), Namespaces.CurrentNetwork());
        }
        catch (PlanException e)
        {
            checks.Add(new Check("marks", Status.Fail, e.Message, Blocks: true));
            return checks;
        }
        checks.Add(new Check("marks", Status.Ok, $"mask 0x{choice.Space.MarkMask:x8}: {choice.MaskReason}"));
        var warnings = choice.Warnings.Append(choice.OvertakenWarning(view)).OfType<string>().ToList();
        checks.Add(new Check("priority", warnings.Count == 0 ? Status.Ok : Status.Warn,
            $"{choice.Space.Priority}: {choice.PriorityReason}{string.Concat(warnings.Select(w => "; " + w))}"));
        var space = choice.Space;
        uint last = space.FirstTable + space.Count - 1;
        var foreign = view.Routes.Where(r => r.Protocol != Planner.Protocol && r.Table >= space.FirstTable && r.Table <= last).Select(r => r.Table)
            .Concat(view.Rules.Where(r => r.Protocol != Planner.Protocol && r.Table >= space.FirstTable && r.Table <= last).Select(r => r.Table)).Distinct().ToList();
        checks.Add(foreign.Count == 0
            ? new Check("tables", Status.Ok, $"tables {space.FirstTable}-{last} are free of other programs' routes")
            : new Check("tables", Status.Warn, $"tables {string.Join(", ", foreign)} in via's range {space.FirstTable}-{last} hold others' routes; via skips them"));
        return checks;
    }

    private static ulong? Capabilities()
    {
        foreach (var line in ReadOr("/proc/self/status", "").Split('\n'))
            if (line.StartsWith("CapEff:", StringComparison.Ordinal))
                return ulong.Parse(line[7..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return null;
    }

    private static string ReadOr(string path, string fallback)
    {
        try { return File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return fallback; }
    }
}

public sealed record CheckDocument(string Check, string Status, string Detail, bool Blocks);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(CheckDocument[]))]
internal sealed partial class DoctorJson : JsonSerializerContext;
