using System.CommandLine;

namespace Via.Cli.Commands.Man;

/// <summary>'via man': via(1), written at run time from the command definitions.</summary>
public static class ManCommand
{
    public static Command Create()
    {
        var command = new Command("man", """
            Print via's manual page (roff, section 1): every command with its options, the exit statuses,
            files and examples, made from the same definitions as --help, so it always matches this via.
            Install it, or read it without installing:

              via man > /usr/local/share/man/man1/via.1     # as root; then: man via
              man -l <(via man)
            """);
        command.SetAction(_ => Say.Guard(Run));
        return command;
    }

    public static int Run()
    {
        Console.Out.Write(Page());
        return ExitCodes.Ok;
    }

    public static string Page() => ManPage.Generate(CommandNode.Walk(Program.BuildRoot()));
}
