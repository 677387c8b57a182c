namespace Via.Cli.Commands.Completion;

/// <summary>Quoting for the generated scripts: every word from the definitions goes through here.</summary>
internal static class Shell
{
    /// <summary>A POSIX single-quoted word (bash, zsh): 'it'\''s'.</summary>
    public static string Quote(string text) => "'" + text.Replace("'", "'\\''") + "'";

    /// <summary>A fish single-quoted word: inside, only \' and \\ are escapes.</summary>
    public static string FishQuote(string text) => "'" + text.Replace("\\", "\\\\").Replace("'", "\\'") + "'";

    /// <summary>A name usable in a shell function's name: 'via run' -> via_run.</summary>
    public static string Identifier(string text) => new(text.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_').ToArray());
}
