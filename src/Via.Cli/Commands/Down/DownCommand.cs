using System.CommandLine;
using Via.Kernel.Processes;
using Via.Mechanisms;

namespace Via.Cli.Commands.Down;

/// <summary>'via down ROUTE' and 'via down --all'.</summary>
public static class DownCommand
{
    public static readonly Argument<string?> Route = new("route")
    {
        Description = "The route to remove: its id (as 'via ls' shows, e.g. t22000), its table number, or its interface if only one route uses it.",
        Arity = ArgumentArity.ZeroOrOne,
        CompletionSources = { ValueKind.Route.Complete },
    };

    public static readonly Option<bool> All = new("--all") { Description = "Remove every route via has made." };

    public static Command Create()
    {
        var command = new Command("down", """
            Remove routes. A route whose programs still run is cut off: they lose their network (their
            connections fail), they never fall back to the default route; the rest of it goes when they exit.

              sudo via down t22000
              sudo via down eth1
              sudo via down --all
            """) { Route, All };
        command.SetAction(parse => Run(parse.GetValue(Route), parse.GetValue(All)));
        return command;
    }

    public static int Run(string? which, bool all)
    {
        if ((which is null) == !all) return Say.Error("name one route, or pass --all (not both); 'via ls' lists them");
        if (!Exec.IsRoot) return Say.Error("'via down' changes routing rules and needs root; run it with sudo");
        using (RouteRegistry.Lock(Say.Note))
        {
            var routes = RouteRegistry.All();
            List<ActiveRoute> selected;
            if (all)
            {
                selected = [.. routes];
            }
            else
            {
                selected = routes.Where(r => r.Id == which || r.Table.ToString(System.Globalization.CultureInfo.InvariantCulture) == which).ToList();
                if (selected.Count == 0) selected = routes.Where(r => r.Device == which).ToList();
                if (selected.Count == 0)
                    return Say.Error($"no route '{which}'; 'via ls' lists the routes ({(routes.Count == 0 ? "there are none" : string.Join(", ", routes.Select(r => r.Id)))})");
                if (selected.Count > 1)
                    return Say.Error($"'{which}' names {selected.Count} routes ({string.Join(", ", selected.Select(r => r.Id))}); name one by its id");
            }
            int failed = 0;
            foreach (var route in selected)
            {
                TeardownResult result;
                string outcome;
                var membership = Teardown.Occupancy(route, mayMount: true);
                if (!membership.MayHaveMembers) // no process to cut off: remove it all
                {
                    result = Teardown.Run(route);
                    outcome = result.Complete ? "removed" : "removed in part";
                }
                else
                {
                    // Processes remain, or may (their membership cannot be read): cut off, never torn down under them.
                    (_, result) = Teardown.CutOff(route);
                    outcome = membership.Unknown is { } unknown
                        ? $"cut off; {unknown}, so it is kept until 'via gc' can tell that no process is left"
                        : $"cut off; {Teardown.Members(route, mayMount: true).Count} process(es) keep no network until they exit";
                }
                foreach (var p in result.Problems(route.Id)) Say.Note(p);
                if (!result.Complete) failed++;
                Console.WriteLine($"{route.Id}: {outcome}");
            }
            return failed == 0 ? ExitCodes.Ok : ExitCodes.ViaFailed;
        }
    }
}
