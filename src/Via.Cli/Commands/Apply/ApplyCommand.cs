using System.CommandLine;
using Via.Cli.Commands.Attach;
using Via.Kernel.Processes;
using Via.Planning;

namespace Via.Cli.Commands.Apply;

/// <summary>'via apply [--check]': makes the host match via.conf, its routes and its rules.</summary>
public static class ApplyCommand
{
    public static readonly Option<bool> Check = new("--check")
    {
        Description = $"Print what would change and change nothing: exit {Engine.ExitCodes.Ok} if nothing would, {Engine.ExitCodes.WouldChange} if something would. Needs no root.",
    };

    public static readonly Option<bool> Json = new("--json") { Description = "Print the changes as one JSON object: {\"changed\": BOOL, \"actions\": [{verb, subject, description, done, error}]}." };

    public static readonly Option<bool> Verbose = new("--verbose", "-v") { Description = "Print each change on stderr as it is applied and undone." };

    public static Command Create()
    {
        var command = new Command("apply", $"""
            Make the host match via.conf (VIA_CONFIG names another file): every [route NAME] of the file is
            brought up as a standing route ('via up'), what the kernel dropped from one (its interface went
            and came back) is put back, one whose definition changed is made again, and the standing
            routes via made that the file no longer has are removed. Every [rule] is put on its route (a
            route of the file, or a device), and the rules an earlier 'via apply' made that the file no
            longer has are deleted. A standing route, or one held by rules, whose keeper (the process that
            keeps it following its interface) is gone gets a new one. Nothing else is touched: routes of 'via run' and 'via attach', rules of
            'via rule add' (unless the file puts the same selector on another route: the file wins), and
            anything that is not via's. Running it again changes nothing.
            A malformed file is refused with FILE:LINE: reason, and nothing is changed. A route the host
            cannot make (its interface is missing) is reported; the others are still made.
            The systemd unit via-apply.service runs it at boot (see the README).

            Exit status: {Engine.ExitCodes.Ok} when the host matches the file (after the changes); with --check, {Engine.ExitCodes.Ok} when
            nothing would change and {Engine.ExitCodes.WouldChange} when something would; {Engine.ExitCodes.ViaFailed} when the file is malformed (nothing
            changed) or a change failed (the others were made).

              sudo via apply
              via apply --check && echo "the host matches via.conf"
              sudo via apply --json
            """) { Check, Json, Verbose };
        command.SetAction(parse => Run(parse.GetValue(Check), parse.GetValue(Json), parse.GetValue(Verbose)));
        return command;
    }

    public static int Run(bool check, bool json, bool verbose)
    {
        // The whole file first: one bad line, and nothing is changed.
        var config = ViaConfig.Load();
        if (!check && !Exec.IsRoot) return Say.Error("'via apply' changes routing rules and cgroups: it needs root; run it with sudo (or try --check)");
        var output = AttachCommand.Output(verbose);
        var actions = Engine.ApplyPlanner.Plan(config, output, Engine.Fault.FromEnvironment());
        var errors = new string?[actions.Count];
        if (!check)
        {
            for (int i = 0; i < actions.Count; i++)
            {
                try
                {
                    actions[i].Execute();
                }
                catch (Exception e)
                {
                    errors[i] = Engine.Failure.Describe(e);
                }
            }
        }
        if (json)
        {
            AttachCommand.WriteJson(w =>
            {
                w.WriteString("config", config.Source);
                w.WriteBoolean("check", check);
                w.WriteBoolean("changed", !check && errors.Any(e => e is null) && actions.Count > 0);
                w.WriteStartArray("actions");
                for (int i = 0; i < actions.Count; i++)
                {
                    w.WriteStartObject();
                    w.WriteString("verb", actions[i].Verb);
                    w.WriteString("subject", actions[i].Subject);
                    w.WriteString("description", actions[i].Description);
                    w.WriteBoolean("done", !check && errors[i] is null);
                    if (errors[i] is { } error) w.WriteString("error", error);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            });
        }
        else
        {
            if (actions.Count == 0) Console.WriteLine($"nothing to change: the host matches {config.Source}");
            for (int i = 0; i < actions.Count; i++)
            {
                if (check) Console.WriteLine("would " + actions[i].Description);
                else if (errors[i] is null) Console.WriteLine("done: " + actions[i].Description);
                else Say.Note($"could not {actions[i].Description}: {errors[i]}");
            }
        }
        if (check) return actions.Count == 0 ? Engine.ExitCodes.Ok : Engine.ExitCodes.WouldChange;
        return errors.All(e => e is null) ? Engine.ExitCodes.Ok : Engine.ExitCodes.ViaFailed;
    }
}
