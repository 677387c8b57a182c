using Via.Cli;
using Via.Cli.Commands;
using Via.Tests.Kernel;

namespace Via.Tests.Unit;

/// <summary>dist/systemd/via-apply.service: what it runs is a command via has, and it runs once at boot after the network is up.</summary>
public sealed class SystemdUnitTests
{
    private static readonly string UnitPath = Path.Combine(ViaBinary.RepositoryRoot, "dist", "systemd", "via-apply.service");

    /// <summary>KEY=VALUE lines of the unit (comments and section headers left out), in order.</summary>
    private static List<(string Key, string Value)> Lines() =>
        [.. File.ReadAllLines(UnitPath).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#') && !l.StartsWith('['))
            .Select(l => l.Split('=', 2)).Select(p => (p[0].Trim(), p[1].Trim()))];

    [Fact]
    public void Every_command_it_runs_is_one_of_vias()
    {
        var tree = CommandNode.Walk(Program.BuildRoot());
        var execs = Lines().Where(l => l.Key is "ExecStart" or "ExecReload" or "ExecStop").ToList();
        Assert.Contains(execs, e => e.Key == "ExecStart");
        foreach (var (key, value) in execs)
        {
            var words = value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(Path.IsPathRooted(words[0]) && Path.GetFileName(words[0]) == "via", $"{key}={value}: systemd needs via's absolute path");
            var command = tree.Subcommands.FirstOrDefault(c => c.Name == words[1]);
            Assert.True(command is not null, $"{key}={value}: via has no command '{words[1]}'");
            foreach (var option in words.Skip(2).Where(w => w.StartsWith('-')))
                Assert.True(command!.Options.Any(o => o.Names.Contains(option)), $"{key}={value}: 'via {words[1]}' has no option {option}");
        }
    }

    [Fact]
    public void It_runs_once_at_boot_after_the_network_is_online()
    {
        var lines = Lines();
        Assert.Contains(("Type", "oneshot"), lines);
        Assert.Contains(("RemainAfterExit", "yes"), lines);
        Assert.Contains(("After", "network-online.target"), lines);
        Assert.Contains(("Wants", "network-online.target"), lines);
        Assert.Contains(("WantedBy", "multi-user.target"), lines);
    }

    [Fact]
    public void The_readme_says_how_to_install_it()
    {
        string readme = File.ReadAllText(Path.Combine(ViaBinary.RepositoryRoot, "README.md"));
        Assert.Contains("Named routes and boot", readme);
        Assert.Contains("dist/systemd/via-apply.service", readme);
        Assert.Contains("systemctl enable", readme);
    }
}
