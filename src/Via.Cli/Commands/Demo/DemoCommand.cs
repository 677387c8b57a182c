using System.CommandLine;

namespace Via.Cli.Commands.Demo;

public static class DemoCommand
{
    public static Command Create()
    {
        var command = new Command("demo", "Build a throwaway two-uplink topology in network namespaces, fetch from it plainly and through 'via run', show both answers, remove everything. Needs root only.");
        command.SetAction(_ => Say.Guard(Demo.Run));
        return command;
    }
}
