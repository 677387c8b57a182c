using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Via.Kernel.Processes;
using Via.Mechanisms;

namespace Via.Cli.Commands.Ls;

/// <summary>'via ls': the routes via has made, with the processes in each.</summary>
public static class LsCommand
{
    public static readonly Option<bool> Json = new("--json") { Description = "Print the routes as JSON, for scripts." };

    public static Command Create()
    {
        var command = new Command("ls", """
            List the routes via has set up: interface, gateway, mark, table, mechanism, state, age, and the
            processes in each (PID, user, command).

              via ls
              via ls --json | jq '.[].id'
            """) { Json };
        command.SetAction(parse => Say.Guard(() => Run(parse.GetValue(Json))));
        return command;
    }

    public static int Run(bool json)
    {
        var now = DateTimeOffset.UtcNow;
        var routes = RouteRegistry.All().OrderBy(r => r.Table).Select(r => new RouteListing(
            r.Id, r.Device, r.Gateway, $"0x{r.Mark:x}", r.Table, r.Mechanism,
            r.Down ? "down" : RouteRegistry.IsAbandoned(r) ? "stale" : "up",
            r.NetworkNamespace, r.Created, (long)(now - r.Created).TotalSeconds,
            Teardown.Members(r).Select(ProcessInfo.Read).OfType<ProcessInfo>().Select(p => new ProcessListing(p.Pid, p.User, p.Command)).ToArray())).ToArray();
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
        Console.WriteLine($"{"ROUTE",-8} {"DEV",-10} {"GATEWAY",-26} {"MARK",-9} {"TABLE",-6} {"MECH",-7} {"STATE",-6} {"AGE",-7} PROCESSES");
        foreach (var r in routes)
        {
            string first = r.Processes.Length == 0 ? "-" : Describe(r.Processes[0]);
            Console.WriteLine($"{r.Id,-8} {r.Device,-10} {r.Gateway ?? "-",-26} {r.Mark,-9} {r.Table,-6} {r.Mechanism,-7} {r.State,-6} {Age(r.AgeSeconds),-7} {first}");
            foreach (var p in r.Processes.Skip(1)) Console.WriteLine($"{"",-86} {Describe(p)}");
        }
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

public sealed record RouteListing(
    string Id, string Device, string? Gateway, string Mark, uint Table, string Mechanism, string State,
    string NetworkNamespace, DateTimeOffset Created, long AgeSeconds, ProcessListing[] Processes);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(RouteListing[]))]
internal sealed partial class LsJson : JsonSerializerContext;
