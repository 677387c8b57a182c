using Via.Cli;

namespace Via.Tests.Unit;

/// <summary>The command tree: whole for help, just one command when the first argument names it.</summary>
public sealed class CommandTreeTests
{
    [Fact]
    public void The_whole_tree_has_every_command()
    {
        Assert.Equal(["run", "attach", "detach", "rule", "ls", "top", "up", "down", "apply", "gc", "doctor", "demo", "completion", "man"], Program.BuildRoot().Subcommands.Select(c => c.Name));
    }

    [Theory]
    [InlineData("run")]
    [InlineData("gc")]
    public void A_named_command_is_built_alone_and_parses_as_in_the_whole_tree(string name)
    {
        Assert.Equal([name], Program.BuildRoot(name).Subcommands.Select(c => c.Name));
        string[] args = name == "run" ? ["run", "--dev", "eth1", "--", "true"] : ["gc", "--dry-run"];
        Assert.Empty(Program.BuildRoot(name).Parse(args).Errors);
        Assert.Empty(Program.BuildRoot().Parse(args).Errors);
    }

    [Fact]
    public void Run_options_parse_to_their_values()
    {
        var root = Program.BuildRoot("run");
        var result = root.Parse(["run", "--dev", "eth1", "--gateway", "192.0.2.1", "--table", "30000", "--user", "alice", "--", "curl", "-s", "x"]);
        Assert.Empty(result.Errors);
        Assert.Equal("eth1", result.GetValue(Via.Cli.Commands.Run.RunCommandDefinition.Dev));
        Assert.Equal(System.Net.IPAddress.Parse("192.0.2.1"), result.GetValue(Via.Cli.Commands.Run.RunCommandDefinition.Gateway));
        Assert.Equal(30000u, result.GetValue(Via.Cli.Commands.Run.RunCommandDefinition.Table));
        Assert.Equal(["curl", "-s", "x"], result.GetValue(Via.Cli.Commands.Run.RunCommandDefinition.Command)!);
        Assert.NotEmpty(root.Parse(["run", "--dev", "eth1", "--gateway", "10.2.0", "--", "true"]).Errors);
    }
}
