using System.CommandLine;
using Via.Cli;
using Via.Cli.Commands;
using Via.Cli.Commands.Completion;

namespace Via.Tests.Unit;

/// <summary>
/// 'via completion bash|zsh|fish': each script passes its shell's own syntax check, and bash and
/// fish complete real command lines with it (interfaces from /sys/class/net, methods from the
/// registry, route ids from the state directory, the program after '--' as the shell would).
/// Needs no root and no network; needs bash, zsh and fish installed.
/// </summary>
public sealed class CompletionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("via-completion-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Save(string shell, string? text = null)
    {
        string path = Path.Combine(_dir, "via." + shell);
        File.WriteAllText(path, text ?? CompletionCommand.Script(shell));
        return path;
    }

    [Fact]
    public void Bash_accepts_its_script() => AssertSyntax("bash", ["-n"]);

    [Fact]
    public void Zsh_accepts_its_script() => AssertSyntax("zsh", ["-n"]);

    [Fact]
    public void Fish_accepts_its_script() => AssertSyntax("fish", ["--no-config", "--no-execute"]);

    private void AssertSyntax(string shell, string[] flags)
    {
        var r = Shells.Run(shell, [.. flags, Save(shell)]);
        Assert.True(r.ExitCode == 0 && r.Stderr.Length == 0, $"{shell} {string.Join(' ', flags)}: exit {r.ExitCode}: {r.Stderr}");
    }

    // ---- bash: the script sourced in a bash process, COMP_WORDS set as bash sets them, _via called.

    /// <summary>COMPREPLY for these words, the cursor at the end of the last one.</summary>
    private string[] Bash(string[] words, string? stateDir = null, string? script = null, bool bashCompletion = false)
    {
        string harness = Path.Combine(_dir, "complete.bash");
        File.WriteAllText(harness,
            """
            [[ -n $BASH_COMPLETION ]] && source "$BASH_COMPLETION"
            source "$1"; shift
            COMP_WORDS=("$@")
            COMP_CWORD=$(( $# - 1 ))
            COMP_LINE="${COMP_WORDS[*]}"
            COMP_POINT=${#COMP_LINE}
            _via
            (( ${#COMPREPLY[@]} )) && printf '%s\n' "${COMPREPLY[@]}"
            exit 0
            """);
        var env = new Dictionary<string, string>
        {
            ["VIA_STATE_DIR"] = stateDir ?? Path.Combine(_dir, "no-state"),
            ["BASH_COMPLETION"] = bashCompletion ? BashCompletion : "",
        };
        var r = Shells.Run("bash", [harness, script ?? Save("bash"), .. words], env);
        // bash-completion's compopt calls complain outside a real TAB: noise of this harness, not of the script.
        string errors = string.Join('\n', r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.Contains("compopt: not currently executing completion function")));
        Assert.True(r.ExitCode == 0 && errors.Length == 0, $"completing '{string.Join(' ', words)}': exit {r.ExitCode}: {errors}");
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>A state directory of the test's own whose routes/ holds these files (a journal is ID.json; ID.json.tmp, a write under way).</summary>
    private string StateWith(params string[] files)
    {
        string state = Path.Combine(_dir, "state");
        Directory.CreateDirectory(Path.Combine(state, "routes"));
        foreach (var f in files) File.WriteAllText(Path.Combine(state, "routes", f), "{}");
        return state;
    }

    private static readonly string[] Interfaces = Directory.EnumerateFileSystemEntries("/sys/class/net").Select(Path.GetFileName).OfType<string>().Order().ToArray();

    [Fact]
    public void Bash_completes_subcommands()
    {
        Assert.Equal(["run", "rule"], Bash(["via", "r"]));
        Assert.Equal(Program.BuildRoot().Subcommands.Select(c => c.Name), Bash(["via", ""]));
    }

    [Fact]
    public void Bash_completes_options_with_their_aliases()
    {
        Assert.Equal(["--method"], Bash(["via", "run", "--m"]));
        Assert.Equal(["--interval", "-n", "--count", "--json", "--help", "-h", "-?"], Bash(["via", "top", "-"]));
        // A command that takes no argument: its options, without a '-' typed.
        Assert.Equal(["--json", "--help", "-h", "-?"], Bash(["via", "ls", ""]));
        // A value is skipped: '1' is --interval's, not an argument.
        Assert.Equal(["--json"], Bash(["via", "top", "--interval", "1", "--j"]));
    }

    [Fact]
    public void Bash_completes_methods_from_the_registry_and_no_value_after_a_flag()
    {
        Assert.Equal(["auto", .. Via.Mechanisms.Registry.All.Select(m => m.Name)], Bash(["via", "run", "--method", ""]));
        Assert.Equal(["seccomp"], Bash(["via", "run", "--method", "s"]));
        // --json takes no value: what follows is another option (or '--').
        Assert.Contains("--dev", Bash(["via", "run", "--json", ""]));
    }

    [Fact]
    public void Bash_completes_interfaces_as_it_finds_them()
    {
        Assert.Contains("lo", Bash(["via", "run", "--dev", ""]));
        Assert.Equal(Interfaces, Bash(["via", "run", "--dev", ""]).Order());
        Assert.Equal(["lo"], Bash(["via", "run", "--dev", "l"]).Where(i => i == "lo"));
        // '--dev=l': bash splits the word at '=' (COMP_WORDBREAKS), or does not.
        Assert.Contains("lo", Bash(["via", "run", "--dev", "=", "l"]));
        Assert.Contains("lo", Bash(["via", "run", "--dev", "="]));
        Assert.Contains("--dev=lo", Bash(["via", "run", "--dev=l"]));
    }

    [Fact]
    public void Bash_completes_the_program_after_the_double_dash_as_a_command()
    {
        Assert.Contains("--", Bash(["via", "run", "--dev", "lo", ""]));
        Assert.Contains("echo", Bash(["via", "run", "--dev", "lo", "--", "ech"]));
        // Its arguments: files, as bash completes them for a command without a completion of its own.
        Assert.Contains("/etc", Bash(["via", "run", "--dev", "lo", "--", "ls", "/et"]));
        // After '--' nothing is via's: no option is offered.
        Assert.DoesNotContain("--method", Bash(["via", "run", "--dev", "lo", "--", "ls", "--m"]));
    }

    /// <summary>bash-completion (as most systems load it): the program's own completion completes its arguments.</summary>
    [Fact]
    public void Bash_completes_the_programs_arguments_with_its_own_completion()
    {
        Assert.Contains("echo", Bash(["via", "run", "--dev", "lo", "--", "ech"], bashCompletion: true));
        // ls's options come from bash-completion's completion for ls, not from via's.
        Assert.Contains("--all", Bash(["via", "run", "--dev", "lo", "--", "ls", "--al"], bashCompletion: true));
        Assert.Contains("lo", Bash(["via", "run", "--dev", ""], bashCompletion: true));
    }

    private static string BashCompletion
    {
        get
        {
            const string path = "/usr/share/bash-completion/bash_completion";
            if (!File.Exists(path)) Assert.Fail($"{path} is missing: apt-get install bash-completion (.ci/run installs it)");
            return path;
        }
    }

    [Fact]
    public void Bash_completes_route_ids_from_the_state_directory()
    {
        string state = StateWith("t22000.json", "t22001.json", "t22002.json.tmp");
        Assert.Equal(["t22000", "t22001"], Bash(["via", "down", ""], state));
        Assert.Equal(["--all"], Bash(["via", "down", "--a"], state));
        // No state directory (via never ran here): nothing, and no error.
        Assert.Empty(Bash(["via", "down", ""]));
    }

    [Fact]
    public void Bash_completes_the_shells_of_via_completion()
    {
        Assert.Equal(["bash", "fish", "zsh"], Bash(["via", "completion", ""]).Order());
    }

    [Fact]
    public void An_unknown_shell_is_one_line_of_error()
    {
        var error = new StringWriter();
        var saved = Console.Error;
        Console.SetError(error);
        try { Assert.Equal(Via.Engine.ExitCodes.ViaFailed, CompletionCommand.Run("csh")); }
        finally { Console.SetError(saved); }
        Assert.Equal("via: no completion for the shell 'csh'; use one of: bash, zsh, fish\n", error.ToString());
    }

    // ---- fish: 'complete -C' gives the candidates of a command line directly.

    private string[] Fish(string line, string? stateDir = null)
    {
        var env = new Dictionary<string, string> { ["VIA_STATE_DIR"] = stateDir ?? Path.Combine(_dir, "no-state") };
        var r = Shells.Run("fish", ["--no-config", "-c", "source $argv[1]; complete --do-complete=$argv[2]", Save("fish"), line], env);
        Assert.True(r.ExitCode == 0 && r.Stderr.Length == 0, $"completing '{line}': exit {r.ExitCode}: {r.Stderr}");
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')[0]).ToArray();
    }

    [Fact]
    public void Fish_completes_commands_options_and_values()
    {
        Assert.Equal(["rule", "run"], Fish("via r"));
        Assert.Equal(["--method"], Fish("via run --me"));
        Assert.Equal(new[] { "auto" }.Concat(Via.Mechanisms.Registry.All.Select(m => m.Name)).Order(), Fish("via run --method ").Order());
        Assert.Contains("lo", Fish("via run --dev "));
        Assert.Contains("-v", Fish("via run -"));
        Assert.Contains("echo", Fish("via run --dev lo -- ech"));
        Assert.DoesNotContain("--method", Fish("via run --dev lo -- ls --m"));
        Assert.Equal(["bash", "fish", "zsh"], Fish("via completion ").Order());
    }

    [Fact]
    public void Fish_completes_route_ids_from_the_state_directory()
    {
        Assert.Equal(["t22000"], Fish("via down ", StateWith("t22000.json")));
    }

    // ---- zsh: an interactive zsh in a pseudo-terminal (zsh/zpty) with compinit and the script in $fpath,
    // TAB typed after the line; compadd wrapped to record what the completion system offers.

    private string[] Zsh(string line, string? stateDir = null)
    {
        string driver = Path.Combine(_dir, "complete.zsh"), hits = Path.Combine(_dir, "zsh-hits");
        File.WriteAllText(driver,
            """
            zmodload zsh/zpty
            zpty z zsh -f -i
            integer n=0
            # Runs a command line and waits until it has finished: zsh drops what is typed ahead of its line editor.
            run() { zpty -w z "$1; print -r -- DONE\${:-}$((++n))"; zpty -r z buf "*DONE$n*" }
            run "PS1=''; fpath=(${(q)1} \$fpath); autoload -U compinit; compinit -u -D"
            run 'compadd() { local -a hits; builtin compadd -O hits "$@"; (( $#hits )) && print -rl -- $hits >> '${(q)3}'; builtin compadd "$@"; }'
            run "zstyle ':completion:*' menu no; bindkey '^I' complete-word"
            zpty -w z "$2"$'\t'
            run $'\C-e\C-u:'
            zpty -d z
            """);
        File.Delete(hits);
        var env = new Dictionary<string, string> { ["VIA_STATE_DIR"] = stateDir ?? Path.Combine(_dir, "no-state") };
        // Installed as the README says: the file _via in a directory of $fpath.
        string functions = Path.Combine(_dir, "site-functions");
        Directory.CreateDirectory(functions);
        File.WriteAllText(Path.Combine(functions, "_via"), CompletionCommand.Script("zsh"));
        var r = Shells.Run("zsh", ["-f", driver, functions, line, hits], env);
        Assert.True(r.ExitCode == 0 && r.Stderr.Length == 0, $"completing '{line}' in zsh: exit {r.ExitCode}: {r.Stderr}");
        return File.Exists(hits) ? File.ReadAllLines(hits).Distinct().Order(StringComparer.Ordinal).ToArray() : [];
    }

    [Fact]
    public void Zsh_completes_commands_options_and_values()
    {
        Assert.Equal(["rule", "run"], Zsh("via r"));
        Assert.Equal(Program.BuildRoot().Subcommands.Select(c => c.Name).Order(StringComparer.Ordinal), Zsh("via "));
        Assert.Equal(["--method"], Zsh("via run --me"));
        Assert.Equal(new[] { "auto" }.Concat(Via.Mechanisms.Registry.All.Select(m => m.Name)).Order(StringComparer.Ordinal), Zsh("via run --method "));
        Assert.Equal(Interfaces.Order(StringComparer.Ordinal), Zsh("via run --dev "));
        Assert.Equal(["lo"], Zsh("via run --dev=l"));
        Assert.Equal(["--json"], Zsh("via top --interval 1 --j"));
        Assert.Contains("echo", Zsh("via run --dev lo -- ech"));
    }

    [Fact]
    public void Zsh_completes_route_ids_from_the_state_directory()
    {
        Assert.Equal(["t22000"], Zsh("via down ", StateWith("t22000.json")));
    }

    [Fact]
    public void Zsh_registers_its_function_for_via_when_sourced()
    {
        string script = Save("zsh");
        var r = Shells.Run("zsh", ["-f", "-c", $"autoload -U compinit && compinit -u -D && source {script} && print -r -- $_comps[via] && whence -w {string.Join(' ', CommandNode.Walk(Program.BuildRoot()).SelfAndDescendants().Select(ZshScript.FunctionName))} _via_interfaces _via_routes"]);
        Assert.True(r.ExitCode == 0 && r.Stderr.Length == 0, $"zsh: exit {r.ExitCode}: {r.Stderr}");
        string[] lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("_via", lines[0]);
        Assert.All(lines.Skip(1), l => Assert.EndsWith(": function", l));
    }

    // ---- drift: whatever the command tree holds is in every script and the man page; the internal verbs never are.

    public static TheoryData<string> Documents => ["bash", "zsh", "fish", "man"];

    private static string Document(string which) => which == "man" ? Via.Cli.Commands.Man.ManCommand.Page() : CompletionCommand.Script(which);

    [Theory]
    [MemberData(nameof(Documents))]
    public void Every_command_and_option_of_the_tree_appears(string which)
    {
        string text = Document(which);
        // The man page writes '-' as '\-'.
        string Spelled(string name) => which == "man" ? name.Replace("-", "\\-") : name;
        foreach (var (command, options) in Walk(Program.BuildRoot(), []))
        {
            // zsh names a function after each command: _via_run.
            Assert.Contains(which == "zsh" ? "_" + command.Replace(' ', '_') + "()" : Spelled(command), text);
            foreach (var name in options)
                Assert.True(text.Contains(which == "fish" ? FishSpelling(name) : Spelled(name), StringComparison.Ordinal), $"{which}: option {name} of '{command}' is missing");
        }
    }

    [Theory]
    [MemberData(nameof(Documents))]
    public void No_internal_verb_appears(string which)
    {
        string text = Document(which);
        foreach (var verb in new[] { Via.Engine.Launching.LaunchStage.Verb, Via.Engine.Reaper.Verb, Via.Cli.Internal.WhoamiServer.Verb, Via.Cli.Internal.Probe.Verb })
            Assert.DoesNotContain(verb, text);
    }

    /// <summary>
    /// A command added by someone else later, with an option that takes an interface, appears in
    /// every script and completes, with no change to the generators; a hidden or '__' command does not.
    /// </summary>
    [Fact]
    public void A_new_command_appears_with_no_change_to_the_generators()
    {
        var root = Program.BuildRoot();
        root.Subcommands.Add(new Command("bridge", "Bridge a route to another.")
        {
            new Option<string>("--peer") { Description = "The peer's interface.", CompletionSources = { ValueKind.Interface.Complete } },
            new Option<bool>("--quiet", "-q") { Description = "Say nothing." },
        });
        root.Subcommands.Add(new Command("__secret", "Internal."));
        root.Subcommands.Add(new Command("hidden", "Hidden.") { Hidden = true });
        var tree = CommandNode.Walk(root);
        string bash = BashScript.Generate(tree), zsh = ZshScript.Generate(tree), fish = FishScript.Generate(tree);
        foreach (var text in new[] { bash, zsh, fish, Via.Cli.Commands.Man.ManPage.Generate(tree).Replace("\\-", "-") })
        {
            Assert.Contains("bridge", text);
            Assert.Contains("peer", text);
            Assert.DoesNotContain("__secret", text);
            Assert.DoesNotContain("hidden", text);
        }
        string script = Save("bash", bash);
        Assert.Contains("bridge", Bash(["via", "b"], script: script));
        Assert.Equal(["--peer"], Bash(["via", "bridge", "--p"], script: script));
        Assert.Contains("lo", Bash(["via", "bridge", "--peer", ""], script: script));
        Assert.Contains("--quiet", Bash(["via", "bridge", "-q", ""], script: script));
        Assert.Equal(0, Shells.Run("zsh", ["-n", Save("zsh", zsh)]).ExitCode);
        Assert.Equal(0, Shells.Run("fish", ["--no-config", "--no-execute", Save("fish", fish)]).ExitCode);
    }

    [Fact]
    public void Attach_says_what_its_options_take()
    {
        var attach = CommandNode.Walk(Program.BuildRoot()).Subcommands.Single(c => c.Name == "attach");
        ValueKind.Sort Of(string name) => attach.Options.Single(o => o.Names.Contains(name)).Value.Kind;
        Assert.Equal(ValueKind.Sort.Interface, Of("--dev"));
        Assert.Equal(ValueKind.Sort.File, Of("--cgroup"));
        Assert.Equal(ValueKind.Sort.Free, Of("--pid"));
        Assert.Equal(ValueKind.Sort.Words, Of("--method"));
    }

    [Fact]
    public void What_each_option_takes_is_read_from_its_definition()
    {
        var run = CommandNode.Walk(Program.BuildRoot()).Subcommands.Single(c => c.Name == "run");
        ValueKind.Sort Of(string name) => run.Options.Single(o => o.Names.Contains(name)).Value.Kind;
        Assert.Equal(ValueKind.Sort.Interface, Of("--dev"));
        Assert.Equal(ValueKind.Sort.Words, Of("--method"));
        Assert.Equal(ValueKind.Sort.None, Of("--json"));
        Assert.Equal(ValueKind.Sort.None, Of("-v"));
        Assert.Equal(ValueKind.Sort.User, Of("--user"));
        Assert.Equal(ValueKind.Sort.Free, Of("--gateway"));
        Assert.Equal(ValueKind.Sort.Command, run.Arguments.Single().Value.Kind);
    }

    /// <summary>The test's own walk of System.CommandLine's tree: each visible command's full name and its options' names (those starting with '-').</summary>
    private static IEnumerable<(string Command, string[] Options)> Walk(Command command, string[] path)
    {
        string[] here = [.. path, path.Length == 0 ? "via" : command.Name];
        yield return (string.Join(' ', here), command.Options.Where(o => !o.Hidden).SelectMany(o => o.Aliases.Append(o.Name)).Where(n => n.StartsWith('-')).ToArray());
        foreach (var c in command.Subcommands.Where(c => !c.Hidden && !c.Name.StartsWith("__", StringComparison.Ordinal)))
            foreach (var x in Walk(c, here)) yield return x;
    }

    /// <summary>fish names an option by -l NAME (long), -s C (one letter) or -o NAME (old style).</summary>
    private static string FishSpelling(string name) =>
        name.StartsWith("--", StringComparison.Ordinal) ? $"-l '{name[2..]}'" : name.Length == 2 ? $"-s '{name[1..]}'" : $"-o '{name[1..]}'";
}
