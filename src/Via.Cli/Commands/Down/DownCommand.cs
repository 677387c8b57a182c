using System.CommandLine;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Planning;

namespace Via.Cli.Commands.Down;

/// <summary>'via down ROUTE' and 'via down --all'.</summary>
public static class DownCommand
{
    public static readonly Argument<string?> Route = new("route")
    {
        Description = "The route to remove: its id (as 'via ls' shows, e.g. t22000), its table number, its name in via.conf (every route of that name: the standing one and launches into it), or its interface if only one route uses it.",
        Arity = ArgumentArity.ZeroOrOne,
        CompletionSources = { ValueKind.Route.Complete },
    };

    public static readonly Option<bool> All = new("--all") { Description = "Remove every route via has made." };

    public static Command Create()
    {
        var command = new Command("down", """
            Remove routes. A route whose programs still run is cut off: they lose their network (their
            connections fail), they never fall back to the default route; the rest of it goes when they exit.
            A standing route ('via up NAME', 'via apply') goes only this way, or by 'via apply' once it left
            via.conf; 'via down NAME' of a route that is not up says so and exits 0.

              sudo via down t22000
              sudo via down work          # the route [route work] of via.conf
              sudo via down eth1
              sudo via down --all
            """) { Route, All };
        command.SetAction(parse => Run(parse.GetValue(Route), parse.GetValue(All)));
        return command;
    }

    /// <summary>via.conf for its route names; a file that cannot be read or parsed names none (said once).</summary>
    private static ViaConfig LoadLenient()
    {
        try { return ViaConfig.Load(); }
        catch (Exception e) when (e is PlanException or IOException or UnauthorizedAccessException)
        {
            Say.Note($"route names of via.conf are not known: {e.Message}");
            return ViaConfig.Empty;
        }
    }

    public static int Run(string? which, bool all)
    {
        if ((which is null) == !all) return Say.Error("name one route, or pass --all (not both); 'via ls' lists them");
        if (!Exec.IsRoot) return Say.Error("'via down' changes routing rules and needs root; run it with sudo");
        // For the names of its routes only: a malformed file never stops 'via down ID'.
        var config = which is null ? ViaConfig.Empty : LoadLenient();
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
                // A route of via.conf: its standing route and the launches into it, every one of them.
                if (selected.Count == 0) selected = routes.Where(r => r.Name == which).ToList();
                bool byName = selected.Count > 0;
                if (selected.Count == 0) selected = routes.Where(r => r.Device == which).ToList();
                if (selected.Count == 0 && config.Route(which!) is not null)
                {
                    Console.WriteLine($"{which}: not up");
                    return ExitCodes.Ok;
                }
                if (selected.Count == 0)
                    return Say.Error($"no route '{which}': neither a route of via's ('via ls' lists them: {(routes.Count == 0 ? "there are none" : string.Join(", ", routes.Select(r => r.Name ?? r.Id)))}) "
                        + $"nor a route of via.conf ({config.RouteNames})");
                if (selected.Count > 1 && !byName)
                    return Say.Error($"'{which}' names {selected.Count} routes ({string.Join(", ", selected.Select(r => r.Id))}); name one by its id");
            }
            int failed = 0;
            foreach (var route in selected)
            {
                var (outcome, result) = Teardown.Down(route);
                foreach (var p in result.Problems(route.Id)) Say.Note(p);
                if (!result.Complete) failed++;
                Console.WriteLine($"{route.Id}{(route.Name is { } name ? $" ({name})" : "")}: {outcome}");
            }
            return failed == 0 ? ExitCodes.Ok : ExitCodes.ViaFailed;
        }
    }
}
