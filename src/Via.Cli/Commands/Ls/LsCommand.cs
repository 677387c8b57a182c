using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Via.Kernel;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Mechanisms.Guard;

namespace Via.Cli.Commands.Ls;

/// <summary>'via ls': the routes via has made, with the processes in each.</summary>
public static class LsCommand
{
    public static readonly Option<bool> Json = new("--json") { Description = "Print the routes as JSON, for scripts." };

    public static Command Create()
    {
        var command = new Command("ls", """
            List the routes via has set up: interface, gateway, mark, table, mechanism, state (up;
            waiting: the interface is gone, down, or without an address or gateway, and the route fails
            closed until it is back; down: cut off by 'via down'; stale: nothing uses it, 'via gc'
            removes it), how many times via re-made it (REMADE: after the interface came back, was
            renumbered or re-created, or another program deleted its rules or routes), age, what
            the route's programs sent out and received through the interface since it was made, how many
            packets the egress guard refused (packets aimed at another interface), and the processes in
            each (PID, user, command), the name of a route of via.conf (standing: kept up by 'via up'
            or 'via apply'), and the standing rules that hold it ('via rule ls'). A route of 'via run --only' lists the destinations it
            carries ("only" in --json). 'via top' shows the same live, with rates.

              via ls
              via ls --json | jq '.[] | {id, refused: .traffic.refusedPackets}'
            """) { Json };
        command.SetAction(parse => Say.Guard(() => Run(parse.GetValue(Json))));
        return command;
    }

    public static int Run(bool json)
    {
        var routes = RouteListing.ReadAll(DateTimeOffset.UtcNow);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(routes, LsJson.Default.RouteListingArray));
            return ExitCodes.Ok;
        }
        if (routes.Length == 0)
        {
            Console.WriteLine("no routes");
            return ExitCodes.Ok;
        }
        Console.WriteLine($"{"ROUTE",-8} {"DEV",-10} {"GATEWAY",-26} {"MARK",-9} {"TABLE",-6} {"MECH",-7} {"STATE",-8} {"REMADE",-6} {"AGE",-6} {"OUT",-7} {"IN",-7} {"REFUSED",-8} PROCESSES");
        foreach (var r in routes)
        {
            string first = r.Processes.Length == 0 ? "-" : Describe(r.Processes[0]);
            var t = r.Traffic;
            Console.WriteLine($"{r.Id,-8} {r.Device,-10} {r.Gateway ?? "-",-26} {r.Mark,-9} {r.Table,-6} {r.Mechanism,-7} {r.State,-8} {r.Repairs,-6} {Age(r.AgeSeconds),-6} "
                + $"{(t is null ? "-" : Units.Bytes(t.OutBytes)),-7} {(t is null ? "-" : Units.Bytes(t.InBytes)),-7} {(t is null ? "-" : Units.Count(t.RefusedPackets)),-8} {first}");
            foreach (var p in r.Processes.Skip(1)) Console.WriteLine($"{"",-113} {Describe(p)}");
        }
        foreach (var r in routes.Where(r => r.Name is not null))
            Console.WriteLine($"{r.Id}: route {r.Name} of via.conf{(r.Standing ? ", standing (kept up until 'via down " + r.Name + "')" : "")}");
        foreach (var r in routes.Where(r => r.Only is not null)) Console.WriteLine($"{r.Id}: only to {string.Join(", ", r.Only!)}");
        foreach (var r in routes.Where(r => r.Waiting is not null)) Console.WriteLine($"{r.Id}: {r.Waiting}");
        foreach (var r in routes.Where(r => r.Attached is { Length: > 0 }))
            Console.WriteLine($"{r.Id}: attached {string.Join(", ", r.Attached!.Select(a => $"pid {a.Pid} (from {a.From})"))}");
        foreach (var r in routes.Where(r => r.AttachedCgroups is { Length: > 0 }))
            Console.WriteLine($"{r.Id}: attached {string.Join(", ", r.AttachedCgroups!.Select(c => c.Unit is null ? $"cgroup {c.Cgroup}" : $"unit {c.Unit} (cgroup {c.Cgroup})"))}");
        foreach (var r in routes.Where(r => r.Rules is { Length: > 0 }))
            Console.WriteLine($"{r.Id}: held by standing rules {string.Join(", ", r.Rules!)} ('via rule ls')");
        return ExitCodes.Ok;
    }

    private static string Describe(ProcessListing p) => $"{p.Pid} {p.User} {(p.Command.Length > 60 ? p.Command[..57] + "..." : p.Command)}";

    private static string Age(long seconds) => seconds switch
    {
        < 120 => $"{seconds}s",
        < 7200 => $"{seconds / 60}m",
        < 172800 => $"{seconds / 3600}h",
        _ => $"{seconds / 86400}d",
    };
}

public sealed record ProcessListing(int Pid, string User, string Command);

/// <summary>A running process 'via attach' put on the route, and the cgroup it came from.</summary>
public sealed record AttachedListing(int Pid, string From);

/// <summary>A cgroup 'via attach --cgroup/--unit' routes where it is.</summary>
public sealed record AttachedCgroupListing(string Cgroup, string? Unit);

/// <summary>What a route's egress guard counted: through IFACE out and in, and the packets it refused.</summary>
public sealed record TrafficListing(ulong OutPackets, ulong OutBytes, ulong InPackets, ulong InBytes, ulong RefusedPackets, ulong RefusedBytes);

/// <param name="State">up, waiting (for IFACE: failing closed), down (via down), or stale (nothing uses it).</param>
/// <param name="Waiting">What the route waits for, when waiting.</param>
/// <param name="Repairs">How many times via re-made the route's objects while it was in use.</param>
/// <param name="Name">The via.conf route it was made from ('via up', 'via run --route', 'via apply'), or null.</param>
/// <param name="Standing">Kept up without a program ('via up', 'via apply') until 'via down'.</param>
/// <param name="Only">--only: the destinations the route carries (SPECs, as --only takes them); null: all.</param>
/// <param name="Rules">The standing rules that hold it ('via rule ls'), as selectors ("user:alice").</param>
public sealed record RouteListing(
    string Id, string Device, string? Gateway, string Mark, uint Table, string Mechanism, string State,
    string NetworkNamespace, DateTimeOffset Created, long AgeSeconds, TrafficListing? Traffic, ProcessListing[] Processes,
    string? Waiting = null, int Repairs = 0, AttachedListing[]? Attached = null, AttachedCgroupListing[]? AttachedCgroups = null,
    string? Name = null, bool Standing = false, string[]? Rules = null, string[]? Only = null)
{
    /// <summary>Every route of the journal, with its counters and processes as they are now (read-only).</summary>
    public static RouteListing[] ReadAll(DateTimeOffset now) => RouteRegistry.All().OrderBy(r => r.Table).Select(r => new RouteListing(
        r.Id, r.Device, r.Gateway, $"0x{r.Mark:x}", r.Table, r.Mechanism,
        r.Down ? "down" : RouteRegistry.IsAbandoned(r) ? "stale" : r.Health,
        r.NetworkNamespace, r.Created, (long)(now - r.Created).TotalSeconds, ReadTraffic(r),
        Teardown.Members(r).Select(ProcessInfo.Read).OfType<ProcessInfo>().Select(p => new ProcessListing(p.Pid, p.User, p.Command)).ToArray(),
        r.Down ? null : r.Waiting, r.Repairs,
        r.Attached.Where(a => a.Process.IsAlive).Select(a => new AttachedListing(a.Process.Pid, a.From)).ToArray(),
        r.AttachedCgroups.Select(c => new AttachedCgroupListing(c.Path, c.Unit)).ToArray(),
        r.Name, r.Standing, r.Rules.Select(x => x.Selector.ToString()).ToArray(),
        r.Only?.Items.Select(f => f.ToString()).ToArray())).ToArray();

    private static TrafficListing? ReadTraffic(ActiveRoute route)
    {
        if (route.Cgroup is not { } cgroup) return null;
        try
        {
            return RouteCounters.Read(cgroup) is { } c
                ? new TrafficListing(c.OutPackets, c.OutBytes, c.InPackets, c.InBytes, c.RefusedPackets, c.RefusedBytes)
                : null;
        }
        catch (KernelException)
        {
            return null; // the cgroup went while we looked: no counters to show
        }
    }
}

/// <summary>Sizes and counts for people: 999, 1.2k, 35M (bytes with B).</summary>
internal static class Units
{
    public static string Bytes(double n) => Scaled(n) + "B";

    public static string Count(double n) => Scaled(n);

    private static string Scaled(double n)
    {
        string[] units = ["", "k", "M", "G", "T", "P"];
        int u = 0;
        while (n >= 999.5 && u < units.Length - 1) { n /= 1000; u++; }
        return u == 0 ? n.ToString("0", CultureInfo.InvariantCulture) : n.ToString(n < 9.95 ? "0.0" : "0", CultureInfo.InvariantCulture) + units[u];
    }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(RouteListing[]))]
internal sealed partial class LsJson : JsonSerializerContext;
