using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Planning;

namespace Via.Cli.Commands.Gc;

/// <summary>'via gc': remove what via left behind.</summary>
public static class GcCommand
{
    public static readonly Option<bool> DryRun = new("--dry-run") { Description = "Say what would be removed; remove nothing." };
    public static readonly Option<bool> Json = new("--json") { Description = "Print what was removed as JSON." };

    public static Command Create()
    {
        var command = new Command("gc", """
            Remove whatever via made that no live process uses: routes left by a crash, a SIGKILL or a lost
            reaper, and via-tagged cgroups, rules and routes that no journal knows (e.g. after /run was wiped).
            Never touches anything that is not tagged as via's.

              sudo via gc
              sudo via gc --dry-run
            """) { DryRun, Json };
        command.SetAction(parse => Run(parse.GetValue(DryRun), parse.GetValue(Json)));
        return command;
    }

    public static int Run(bool dryRun, bool json)
    {
        if (!Exec.IsRoot) return Say.Error("'via gc' removes routing rules and cgroups and needs root; run it with sudo");
        List<Collector.Removal> removed;
        if (dryRun)
        {
            // Reads only: no lock (taking it creates it), no mount, nothing created.
            removed = Collector.Collect(Planner.Protocol, dryRun);
        }
        else
        {
            using (RouteRegistry.Lock(Say.Note))
                removed = Collector.Collect(Planner.Protocol, dryRun);
        }
        if (json)
        {
            var doc = removed.Select(r => new GcItem(r.What, r.Why, r.Failures.ToArray(), r.Kept)).ToArray();
            Console.WriteLine(JsonSerializer.Serialize(doc, GcJson.Default.GcItemArray));
        }
        else
        {
            foreach (var r in removed)
            {
                if (r.Kept) Say.Note($"{(dryRun ? "would keep" : "kept")} {r.What}: {r.Why}");
                else Console.WriteLine($"{(dryRun ? "would remove" : r.Failures.Count > 0 ? "removed part of" : "removed")} {r.What}: {r.Why}");
                foreach (var f in r.Failures) Say.Note("could not undo: " + f);
            }
            if (removed.Count == 0) Console.WriteLine("nothing to collect");
        }
        return removed.All(r => r.Failures.Count == 0 && !r.Kept) ? ExitCodes.Ok : ExitCodes.ViaFailed;
    }
}

/// <param name="Kept">Not removed (or not all of it): <paramref name="Why"/> says why.</param>
public sealed record GcItem(string What, string Why, string[] Failures, bool Kept);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(GcItem[]))]
internal sealed partial class GcJson : JsonSerializerContext;
