namespace Via.Cli.Commands.Demo;

public static class Demo
{
    public static int Run() => Say.Error("demo: not built yet");
}
