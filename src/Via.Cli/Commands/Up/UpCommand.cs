using System.CommandLine;
using Via.Cli.Commands.Attach;
using Via.Kernel;
using Via.Kernel.Processes;
using Via.Planning;

namespace Via.Cli.Commands.Up;

/// <summary>'via up NAME': a route of via.conf kept up without a program, so launches into it ('via run --route NAME') only join it.</summary>
public static class UpCommand
{
    public static readonly Argument<string> Name = new("name")
    {
        Description = "The route: a [route NAME] section of via.conf.",
        CompletionSources = { ValueKind.RouteName.Complete },
    };

    public static readonly Option<bool> Json = new("--json") { Description = "Print the route as one JSON object (id, name, device, table, mark, wasUp)." };

    public static readonly Option<bool> Verbose = new("--verbose", "-v") { Description = "Print each change on stderr as it is applied." };

    public static Command Create()
    {
        var command = new Command("up", """
            Bring up a route of via.conf ([route NAME]) and keep it up without a program: its table, rules,
            cgroup and guard stay until 'via down NAME' (or 'via apply' once it left the file), whatever
            runs or exits. 'via run --route NAME -- COMMAND' then joins it, which costs no set-up. A route
            that is up already is left as it is (exit 0). 'via apply' brings up every route of the file.

              sudo via up work
              sudo via run --route work -- curl https://example.org
              sudo via down work
            """) { Name, Json, Verbose };
        command.SetAction(parse => Run(parse.GetValue(Name)!, parse.GetValue(Json), parse.GetValue(Verbose)));
        return command;
    }

    public static int Run(string name, bool json, bool verbose)
    {
        var config = ViaConfig.Load();
        var named = config.Route(name) ?? throw new ViaException($"no route '{name}' in via.conf ({config.RouteNames}); add a [route {name}] section");
        if (!Exec.IsRoot) return Say.Error("'via up' changes routing rules and cgroups: it needs root; run it with sudo");
        var done = Engine.NamedRoutes.Up(named, AttachCommand.Output(verbose), Engine.Fault.FromEnvironment());
        var r = done.Route;
        if (json)
        {
            AttachCommand.WriteJson(w =>
            {
                w.WriteString("id", r.Id);
                w.WriteString("name", name);
                w.WriteString("device", r.Device);
                w.WriteNumber("table", r.Table);
                w.WriteNumber("mark", r.Mark);
                w.WriteString("mechanism", r.Mechanism);
                w.WriteBoolean("wasUp", done.WasUp);
            });
            return Engine.ExitCodes.Ok;
        }
        Console.WriteLine(done.WasUp
            ? $"route {name} is up already ({r.Id}, dev {r.Device}, table {r.Table})"
            : $"route {name} is up ({r.Id}, dev {r.Device}, table {r.Table}, method {r.Mechanism}); 'via run --route {name} -- COMMAND' joins it, 'via down {name}' removes it");
        return Engine.ExitCodes.Ok;
    }
}
