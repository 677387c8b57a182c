using System.CommandLine;
using Via.Cli.Commands.Apply;
using Via.Cli.Commands.Attach;
using Via.Cli.Commands.Completion;
using Via.Cli.Commands.Demo;
using Via.Cli.Commands.Doctor;
using Via.Cli.Commands.Down;
using Via.Cli.Commands.Gc;
using Via.Cli.Commands.Ls;
using Via.Cli.Commands.Man;
using Via.Cli.Commands.Run;
using Via.Cli.Commands.Top;
using Via.Cli.Commands.Up;
using Via.Cli.Internal;

namespace Via.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        Via.Kernel.PhaseTrace.Mark("start");
        int status = Say.Guard(() => Dispatch(args));
        Via.Kernel.PhaseTrace.Mark("end");
        Via.Kernel.PhaseTrace.Report();
        return status;
    }

    private static int Dispatch(string[] args)
    {
        // Internal stages re-executed from this same binary: dispatched before any parsing, so the
        // launcher between via and the program costs as little as possible.
        if (args.Length > 0 && args[0].StartsWith("__", StringComparison.Ordinal))
        {
            return args[0] switch
            {
                Engine.Launching.LaunchStage.Verb => Engine.Launching.LaunchStage.Run(args.AsSpan(1)),
                Reaper.Verb => Reaper.Run(args.AsSpan(1)),
                WhoamiServer.Verb => WhoamiServer.Run(args.AsSpan(1)),
                Probe.Verb => Probe.Run(args.AsSpan(1)),
                _ => Say.Error($"unknown internal command {args[0]}"),
            };
        }
        // 'via run' in its usual shape, without building System.CommandLine's tree (its launch time is benchmarked).
        if (RunFastParse.TryParse(args) is { } run)
        {
            Fault.FromEnvironment().At("command");
            return Say.Guard(() => RunCommand.Execute(run));
        }
        return Parse(args);
    }

    /// <summary>The commands, made on demand: building all of them costs a quarter of a millisecond
    /// that 'via run' (whose launch time is benchmarked) does not need to pay.</summary>
    private static readonly (string Name, Func<Command> Create)[] Commands =
    [
        ("run", RunCommandDefinition.Create),
        ("attach", AttachCommand.Create),
        ("detach", DetachCommand.Create),
        ("rule", Via.Cli.Commands.Rule.RuleCommand.Create),
        ("ls", LsCommand.Create),
        ("top", TopCommand.Create),
        ("up", UpCommand.Create),
        ("down", DownCommand.Create),
        ("apply", ApplyCommand.Create),
        ("gc", GcCommand.Create),
        ("doctor", DoctorCommand.Create),
        ("demo", DemoCommand.Create),
        ("completion", CompletionCommand.Create),
        ("man", ManCommand.Create),
    ];

    /// <summary>The command tree; with <paramref name="only"/>, just that command under the root.</summary>
    public static RootCommand BuildRoot(string? only = null)
    {
        var root = new RootCommand(Description);
        foreach (var (name, create) in Commands)
            if (only is null || only == name) root.Subcommands.Add(create());
        return root;
    }

    private const string Description =
        """
        via: make one program's traffic leave the way you choose, without touching any other program.

          sudo via run --dev eth1 -- curl https://example.org
          sudo via run --dev eth1 --gateway 192.168.2.1 -- ./my-go-service
          sudo via run --dev eth1 --dry-run -- curl https://example.org
          sudo via demo

        Exit status of 'run': the program's own; 128+N if it died of signal N; 126 if it could not be
        executed; 127 if it was not found; 125 if via itself failed (then nothing on the host was changed).
        """;

    private static int Parse(string[] args)
    {
        var root = BuildRoot(args.Length > 0 && Commands.Any(c => c.Name == args[0]) ? args[0] : null);
        var result = root.Parse(args);
        string command = result.CommandResult.Command.Name;
        string help = $"see 'via {(command == root.Name ? "" : command + " ")}--help'";
        if (result.Errors.Count > 0)
        {
            // One line: what was wrong, and where to read more.
            // 'via run --dev eth1 prog --dev x': the program's own options were taken for via's.
            string hint = command == "run" && !args.Contains("--") ? "; put the program after '--': via run --dev IFACE -- COMMAND [ARGS...]" : "";
            return Say.Error($"{string.Join("; ", result.Errors.Select(e => e.Message.TrimEnd('.')))}{hint}; {help}");
        }
        if (UnknownOption(result, args) is { } unknown)
            return Say.Error($"unknown option '{unknown}' for 'via {command}'{(command == "run" ? "; the program and its options go after '--'" : "")}; {help}");
        Fault.FromEnvironment().At("command");
        // Failures are reported by Main's one handler (Say.Guard), never by System.CommandLine's, which prints a stack trace.
        return result.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
    }

    /// <summary>
    /// A token that looks like an option but is none of the command's, before '--' and before the
    /// first argument. System.CommandLine hands such tokens to a command's arguments without
    /// complaint: 'via run --dev eth1 --verbos -- true' would run '--verbos'.
    /// </summary>
    internal static string? UnknownOption(ParseResult result, string[] args)
    {
        var command = result.CommandResult.Command;
        var options = command.Options.Concat(result.RootCommandResult.Command.Options.Where(o => o.Recursive)).ToList();
        var known = options.SelectMany(o => o.Aliases.Append(o.Name)).ToHashSet(StringComparer.Ordinal);
        var takesValue = options.Where(o => o.Arity.MaximumNumberOfValues > 0 && o.ValueType != typeof(bool))
            .SelectMany(o => o.Aliases.Append(o.Name)).ToHashSet(StringComparer.Ordinal);
        int start = Array.IndexOf(args, command.Name) + 1;
        for (int i = Math.Max(start, 0); i < args.Length; i++)
        {
            string token = args[i];
            if (token == "--" || !token.StartsWith('-') || token == "-") return null; // the program (or a route name) begins
            string name = token.Split('=', 2)[0];
            if (!known.Contains(name)) return token;
            if (takesValue.Contains(name) && !token.Contains('=')) i++;
        }
        return null;
    }
}
