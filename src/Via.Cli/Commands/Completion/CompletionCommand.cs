using System.CommandLine;

namespace Via.Cli.Commands.Completion;

/// <summary>'via completion SHELL': a completion script, written at run time from the command definitions.</summary>
public static class CompletionCommand
{
    private static readonly (string Shell, Func<CommandNode, string> Generate)[] Scripts =
    [
        ("bash", BashScript.Generate),
        ("zsh", ZshScript.Generate),
        ("fish", FishScript.Generate),
    ];

    public static readonly Argument<string> Shell = new("shell")
    {
        Description = "The shell: " + string.Join(", ", Scripts.Select(s => s.Shell)) + ".",
        CompletionSources = { ValueKind.OneOf(Scripts.Select(s => s.Shell)).Complete },
    };

    public static Command Create()
    {
        var command = new Command("completion", """
            Print a completion script for bash, zsh or fish: via's commands, their options, and the values
            options take (interfaces as the shell completes them, methods, routes; the program after
            'via run --' as the shell completes a command). It is made from the same definitions as --help,
            so it always matches this via. Completing needs no root and changes nothing. Install it once:

              via completion bash > /etc/bash_completion.d/via     # as root; or add 'source <(via completion bash)' to ~/.bashrc
              via completion zsh > /usr/local/share/zsh/site-functions/_via   # as root (any directory in $fpath, file _via)
              via completion fish > ~/.config/fish/completions/via.fish
            """) { Shell };
        command.SetAction(parse => Say.Guard(() => Run(parse.GetValue(Shell)!)));
        return command;
    }

    public static int Run(string shell)
    {
        if (!Scripts.Any(s => s.Shell == shell))
            return Say.Error($"no completion for the shell '{shell}'; use one of: {string.Join(", ", Scripts.Select(s => s.Shell))}");
        Console.Out.Write(Script(shell));
        return ExitCodes.Ok;
    }

    /// <summary>The script for that shell, from the whole command tree.</summary>
    public static string Script(string shell) => Scripts.Single(s => s.Shell == shell).Generate(CommandNode.Walk(Program.BuildRoot()));
}
