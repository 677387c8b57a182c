using System.Text.Json;
using System.Text.Json.Serialization;
using Via.Kernel.Processes;
using Via.Mechanisms.Seccomp;
using Via.Planning;
using Via.Planning.Dns;

namespace Via.Cli.Internal;

/// <summary>Prints a plan for --dry-run: as shell-like text, or as JSON for scripts.</summary>
public static class PlanPrinter
{
    // Commands hold '<' and '>' ("<via_mark: ...>"): printed as they are, not as \u003C, for people and jq alike.
    private static readonly PlanJson Readable = new(new JsonSerializerOptions(PlanJson.Default.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    public static void Print(Plan plan, string[] command, Credentials? who, bool json, DnsPlan dns)
    {
        var r = plan.Route;
        if (json)
        {
            var dto = new PlanDocument(plan.RouteId, r.Link.Name, r.Gateway4?.ToString(), r.Source4?.ToString(), r.Gateway6?.ToString(),
                r.Source6?.ToString(), r.Routes4, r.Routes6, plan.Numbers.Mark, plan.Numbers.MarkMask, plan.Numbers.Table,
                plan.Mechanism.Name, plan.Membership, who?.Name ?? "root", command,
                plan.Changes.Select(c => new StepDocument(c.Command, c.UndoCommand)).ToArray(),
                new DnsDocument(dns.KeepsHost ? "host" : "private", dns.Servers.Select(s => s.ToString()).ToArray(), dns.Origin, dns.Warning,
                    dns.Private?.ResolvConf, dns.Private?.NsSwitch is { } ns ? NsSwitchHosts(ns) : null, dns.Private?.NscdDirectory));
            Console.WriteLine(JsonSerializer.Serialize(dto, Readable.PlanDocument));
            return;
        }
        Console.WriteLine($"# route {plan.RouteId}: dev {r.Link.Name}, mark 0x{plan.Numbers.Mark:x}/0x{plan.Numbers.MarkMask:x}, table {plan.Numbers.Table}, mechanism {plan.Mechanism.Name}");
        Console.WriteLine($"# IPv4: {(r.Routes4 ? $"via {r.Gateway4?.ToString() ?? "(point-to-point)"} src {r.Source4}" : "unreachable for the program")}");
        Console.WriteLine($"# IPv6: {(r.Routes6 ? $"via {r.Gateway6?.ToString() ?? "(point-to-point)"} src {r.Source6}" : "unreachable for the program")}");
        foreach (var change in plan.Changes) Console.WriteLine(change.Command);
        Console.WriteLine($"# DNS: {dns.Describe()}");
        if (dns.Warning is { } warning) Console.WriteLine($"# warning: {warning}");
        Console.WriteLine($"# then: run {string.Join(' ', command)} in {plan.Membership} as {who?.Describe() ?? "root"}");
        if (plan.Launch.SeccompListener)
            Console.WriteLine($"#   with via's seccomp filter; its supervisor {SeccompMechanism.SupervisorName}, in the same cgroup, makes and marks every IPv4/IPv6 socket");
        Console.WriteLine("# when its last process exits, in reverse:");
        foreach (var change in plan.Changes.Reverse()) Console.WriteLine(change.UndoCommand);
    }

    private static string? NsSwitchHosts(string text) =>
        text.Split('\n').FirstOrDefault(l => l.StartsWith("hosts:", StringComparison.Ordinal));
}

public sealed record StepDocument(string Command, string Undo);

public sealed record PlanDocument(
    string Route, string Device, string? Gateway4, string? Source4, string? Gateway6, string? Source6,
    bool Routes4, bool Routes6, uint Mark, uint MarkMask, uint Table, string Mechanism, string? Cgroup,
    string User, string[] Command, StepDocument[] Steps, DnsDocument Dns);

/// <param name="Mode">"private": the program's own resolver files naming <paramref name="Servers"/>; "host": the host's resolver as it is.</param>
public sealed record DnsDocument(string Mode, string[] Servers, string Origin, string? Warning, string? ResolvConf, string? NsSwitchHosts, string? HiddenNscd);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(PlanDocument))]
internal sealed partial class PlanJson : JsonSerializerContext;
