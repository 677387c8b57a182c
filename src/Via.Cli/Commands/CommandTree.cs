using System.CommandLine;

namespace Via.Cli.Commands;

/// <summary>
/// The command tree as the completion scripts and the man page show it, walked from
/// System.CommandLine's definitions: visible commands (never a hidden one, nor an internal
/// '__' verb), each with its options (its own and those it inherits, e.g. --help) and arguments.
/// A command or option added to the definitions appears in both with no change here.
/// </summary>
public sealed record CommandNode(IReadOnlyList<string> Path, string Description, IReadOnlyList<OptionNode> Options, IReadOnlyList<ArgumentNode> Arguments, IReadOnlyList<CommandNode> Subcommands)
{
    public string Name => Path[^1];

    /// <summary>"via", "via run".</summary>
    public string FullName => string.Join(' ', Path);

    public IEnumerable<CommandNode> SelfAndDescendants() => Subcommands.SelectMany(c => c.SelfAndDescendants()).Prepend(this);

    public static CommandNode Walk(Command root) => Walk(root, ["via"], []);

    private static CommandNode Walk(Command command, string[] path, IReadOnlyList<Option> inherited)
    {
        var own = command.Options.Where(o => !o.Hidden).ToList();
        var passedOn = inherited.Concat(own.Where(o => o.Recursive)).ToList();
        return new CommandNode(
            path,
            command.Description ?? "",
            own.Concat(inherited.Where(i => !own.Contains(i))).Select(OptionNode.Of).ToList(),
            command.Arguments.Where(a => !a.Hidden).Select(ArgumentNode.Of).ToList(),
            command.Subcommands.Where(Visible).Select(c => Walk(c, [.. path, c.Name], passedOn)).ToList());
    }

    /// <summary>Internal verbs ('__launch' and the like) are dispatched before parsing and never offered.</summary>
    public static bool Visible(Command command) => !command.Hidden && !command.Name.StartsWith("__", StringComparison.Ordinal);

    /// <summary>
    /// What a shell shows beside a candidate: the first sentence of a description, on one line; when
    /// it is long, what comes before its first ':' or ';', without parentheses, at most <see cref="SummaryLength"/> characters.
    /// </summary>
    public static string Summary(string description)
    {
        string paragraph = string.Join(' ', description.Trim().Split("\n\n")[0].Split('\n', StringSplitOptions.TrimEntries));
        string sentence = paragraph.TrimEnd('.');
        // A sentence ends at a full stop before a capital ("e.g. eth1" goes on).
        for (int i = paragraph.IndexOf(". ", StringComparison.Ordinal); i > 0; i = paragraph.IndexOf(". ", i + 1, StringComparison.Ordinal))
            if (i + 2 < paragraph.Length && char.IsUpper(paragraph[i + 2])) { sentence = paragraph[..i]; break; }
        if (sentence.Length <= SummaryLength) return sentence;
        int clause = sentence.IndexOfAny([':', ';']);
        if (clause >= 10) sentence = sentence[..clause];
        if (sentence.Length > SummaryLength) sentence = WithoutParentheses(sentence);
        if (sentence.Length <= SummaryLength) return sentence;
        int cut = sentence.LastIndexOf(' ', SummaryLength - 3);
        return sentence[..(cut > 0 ? cut : SummaryLength - 3)].TrimEnd(',', ' ') + "...";
    }

    public const int SummaryLength = 90;

    private static string WithoutParentheses(string text)
    {
        var kept = new System.Text.StringBuilder();
        int depth = 0;
        foreach (char c in text)
        {
            if (c == '(') depth++;
            else if (c == ')' && depth > 0) depth--;
            else if (depth == 0) kept.Append(c);
        }
        return string.Join(' ', kept.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries)).Replace(" ,", ",");
    }
}

/// <param name="Names">The name, then its aliases; only those a shell user types (never System.CommandLine's '/h').</param>
/// <param name="Repeatable">May be given more than once (--dns).</param>
public sealed record OptionNode(IReadOnlyList<string> Names, string Description, string HelpName, ValueKind Value, bool Repeatable, bool Required)
{
    public bool TakesValue => Value.Kind != ValueKind.Sort.None;

    public static OptionNode Of(Option option)
    {
        var value = ValueKind.Of(option);
        return new OptionNode(
            option.Aliases.Prepend(option.Name).Where(n => n.StartsWith('-')).Distinct().ToList(),
            option.Description ?? "",
            option.HelpName ?? HelpNameOf(value, option.Name.TrimStart('-')),
            value,
            option.Arity.MaximumNumberOfValues > 1,
            option.Required);
    }

    internal static string HelpNameOf(ValueKind value, string name) => value.Kind switch
    {
        ValueKind.Sort.Interface => "IFACE",
        ValueKind.Sort.Words => string.Join('|', value.Words),
        _ => name.ToUpperInvariant(),
    };
}

/// <param name="Max">How many values it takes at most (<see cref="int.MaxValue"/>: the rest of the line).</param>
public sealed record ArgumentNode(string Name, string Description, string HelpName, ValueKind Value, int Min, int Max)
{
    public static ArgumentNode Of(Argument argument)
    {
        var value = ValueKind.Of(argument);
        int max = argument.Arity.MaximumNumberOfValues;
        return new ArgumentNode(argument.Name, argument.Description ?? "", argument.HelpName ?? OptionNode.HelpNameOf(value, argument.Name),
            value, argument.Arity.MinimumNumberOfValues, max > 1000 ? int.MaxValue : max);
    }
}
