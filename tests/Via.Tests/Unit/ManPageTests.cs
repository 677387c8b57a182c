using System.Reflection;
using Via.Cli;
using Via.Cli.Commands.Man;

namespace Via.Tests.Unit;

/// <summary>'via man': renders without a groff warning, and says what the definitions say.</summary>
public sealed class ManPageTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("via-man-").FullName;
    private readonly string _page = ManCommand.Page();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Saved()
    {
        string path = Path.Combine(_dir, "via.1");
        File.WriteAllText(path, _page);
        return path;
    }

    [Fact]
    public void Groff_renders_it_without_a_warning()
    {
        var r = Shells.Run("groff", ["-man", "-Tutf8", "-ww", "-z", Saved()]);
        Assert.True(r.ExitCode == 0 && r.Stderr.Length == 0, $"groff -man -Tutf8 -ww: exit {r.ExitCode}: {r.Stderr}");
    }

    [Fact]
    public void Man_shows_it_with_its_sections()
    {
        var r = Shells.Run("man", ["-l", Saved()], new Dictionary<string, string> { ["MANPAGER"] = "cat", ["MANWIDTH"] = "100", ["MAN_KEEP_FORMATTING"] = "" });
        Assert.True(r.ExitCode == 0 && r.Stderr.Length == 0, $"man -l: exit {r.ExitCode}: {r.Stderr}");
        string text = r.Stdout;
        int at = 0;
        foreach (var section in new[] { "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXIT STATUS", "FILES", "ENVIRONMENT", "EXAMPLES", "SEE ALSO" })
        {
            int found = text.IndexOf("\n" + section + "\n", at, StringComparison.Ordinal);
            Assert.True(found > 0, $"section {section} missing or out of order");
            at = found;
        }
        Assert.Contains("via run [--dev IFACE]", text);
        Assert.Contains("[--route NAME]", text);
    }

    [Fact]
    public void Exit_status_has_every_code_of_ExitCodes()
    {
        var codes = typeof(Via.Engine.ExitCodes).GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral).Select(f => (int)f.GetRawConstantValue()!).ToList();
        Assert.Equal(codes.Count, Via.Engine.ExitCodes.Meanings.Count);
        string exitStatus = _page[_page.IndexOf(".SH EXIT STATUS", StringComparison.Ordinal).._page.IndexOf(".SH FILES", StringComparison.Ordinal)];
        foreach (int code in codes)
            Assert.Contains($".B {code}", exitStatus);
    }

    [Fact]
    public void Examples_are_the_commands_own()
    {
        string examples = _page[_page.IndexOf(".SH EXAMPLES", StringComparison.Ordinal)..].Replace("\\-", "-").Replace("\\e", "\\");
        var commands = Program.BuildRoot().Subcommands.Prepend(Program.BuildRoot());
        foreach (var line in commands.SelectMany(c => (c.Description ?? "").Split('\n')).Where(l => l.StartsWith("  ", StringComparison.Ordinal) && l.Trim().Length > 0))
            Assert.Contains(line.Trim(), examples);
    }

    [Fact]
    public void Files_are_the_ones_via_uses()
    {
        Assert.Contains(Via.Planning.Settings.DefaultPath.Replace("-", "\\-"), _page);
        Assert.Contains(Via.Mechanisms.Journal.DefaultStateDirectory, _page);
    }
}
