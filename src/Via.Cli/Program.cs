using System.CommandLine;
using Via.Cli.Commands.Demo;
using Via.Cli.Commands.Doctor;
using Via.Cli.Commands.Down;
using Via.Cli.Commands.Gc;
using Via.Cli.Commands.Ls;
using Via.Cli.Commands.Run;
using Via.Cli.Commands.Top;
using Via.Cli.Internal;

namespace Via.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        // Internal stages re-executed from this same binary: dispatched before any parsing, so the
        // launcher between via and the program costs as little as possible.
        if (args.Length > 0 && args[0].StartsWith("__", StringComparison.Ordinal))
        {
            return args[0] switch
            {
                Launcher.Verb => Launcher.Run(args.AsSpan(1)),
                Reaper.Verb => Reaper.Run(args.AsSpan(1)),
                WhoamiServer.Verb => WhoamiServer.Run(args.AsSpan(1)),
                Probe.Verb => Probe.Run(args.AsSpan(1)),
                _ => Say.Error($"unknown internal command {args[0]}"),
            };
        }
        return Parse(args);
    }

    /// <summary>The commands, made on demand: building all of them costs a quarter of a millisecond
    /// that 'via run' (whose launch time is benchmarked) does not need to pay.</summary>
    private static readonly (string Name, Func<Command> Create)[] Commands =
    [
        ("run", RunCommandDefinition.Create),
        ("ls", LsCommand.Create),
        ("top", TopCommand.Create),
        ("down", DownCommand.Create),
        ("gc", GcCommand.Create),
        ("doctor", DoctorCommand.Create),
        ("demo", DemoCommand.Create),
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
        if (result.Errors.Count > 0)
        {
            // One line: what was wrong, and where to read more.
            string command = result.CommandResult.Command.Name;
            // 'via run --dev eth1 prog --dev x': the program's own options were taken for via's.
            string hint = command == "run" && !args.Contains("--") ? "; put the program after '--': via run --dev IFACE -- COMMAND [ARGS...]" : "";
            return Say.Error($"{string.Join("; ", result.Errors.Select(e => e.Message.TrimEnd('.')))}{hint}; see 'via {(command == root.Name ? "" : command + " ")}--help'");
        }
        return result.Invoke();
    }
}
