using System.CommandLine;
using Via.Planning;

namespace Via.Cli.Commands;

/// <summary>
/// --route NAME on a command that otherwise takes --dev and the rest ('via rule add', 'via attach'):
/// the route is the file's ([route NAME] of via.conf), and an option that would say otherwise is
/// refused, not merged, as 'via run --route' does.
/// </summary>
internal static class RouteByName
{
    public static Option<string?> Create(string what) => new("--route")
    {
        Description = $"A route of via.conf ([route NAME]) instead of --dev and the rest: {what} goes on that route (the standing one if it is up: 'via up NAME').",
        HelpName = "NAME",
        CompletionSources = { ValueKind.RouteName.Complete },
    };

    /// <summary>The file's route NAME, or null and why not (an option given beside it, a name the file does not have).</summary>
    public static NamedRoute? Read(ParseResult parse, string name, IEnumerable<Option> others, out string? error)
    {
        var given = others.Where(o => parse.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
        if (given.Count > 0)
        {
            error = $"--route {name} names the route; {string.Join(", ", given)} cannot be given with it (the file says them); nothing was changed";
            return null;
        }
        var config = ViaConfig.Load();
        error = config.Route(name) is null ? $"no route '{name}' in via.conf ({config.RouteNames}); add a [route {name}] section, or use --dev; nothing was changed" : null;
        return config.Route(name);
    }
}
