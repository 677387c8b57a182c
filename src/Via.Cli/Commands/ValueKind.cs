using System.CommandLine;
using System.CommandLine.Completions;
using Via.Mechanisms;

namespace Via.Cli.Commands;

/// <summary>
/// What an option or argument takes as its value, said once, next to its definition:
/// <c>CompletionSources = { ValueKind.Interface.Complete }</c>. The completion scripts
/// (<c>via completion</c>) and the man page walk the command tree and read it back with
/// <see cref="Of(Option)"/>; System.CommandLine's own completions (the [suggest] directive) call
/// <see cref="Complete"/>. An option without one is a flag when it takes no value, offers its
/// System.CommandLine completions (an enum's names) when it has some, and is free text otherwise.
/// </summary>
public sealed class ValueKind
{
    public enum Sort
    {
        /// <summary>A flag: no value.</summary>
        None,
        /// <summary>One of <see cref="Words"/>.</summary>
        Words,
        /// <summary>A network interface of this host (the shells read /sys/class/net as they complete).</summary>
        Interface,
        /// <summary>The id of one of via's routes (the shells list the state directory's journals).</summary>
        Route,
        /// <summary>The name of a route of via.conf (the shells read its [route NAME] lines).</summary>
        RouteName,
        /// <summary>A user name.</summary>
        User,
        /// <summary>A path.</summary>
        File,
        /// <summary>A program and its arguments, completed as the shell completes a command line.</summary>
        Command,
        /// <summary>Anything (an address, a number): nothing to offer.</summary>
        Free,
    }

    public Sort Kind { get; }

    /// <summary>The values, for <see cref="Sort.Words"/>; empty otherwise.</summary>
    public IReadOnlyList<string> Words { get; }

    private ValueKind(Sort kind, IReadOnlyList<string>? words = null) => (Kind, Words) = (kind, words ?? []);

    public static readonly ValueKind None = new(Sort.None);
    public static readonly ValueKind Interface = new(Sort.Interface);
    public static readonly ValueKind Route = new(Sort.Route);
    public static readonly ValueKind RouteName = new(Sort.RouteName);
    public static readonly ValueKind User = new(Sort.User);
    public static readonly ValueKind File = new(Sort.File);
    public static readonly ValueKind Command = new(Sort.Command);
    public static readonly ValueKind Free = new(Sort.Free);

    public static ValueKind OneOf(IEnumerable<string> words) => new(Sort.Words, words.ToArray());

    /// <summary>
    /// The completion source that carries this kind (its delegate's target is this object, which
    /// is how <see cref="Of(Option)"/> finds it again: no reflection).
    /// </summary>
    public IEnumerable<CompletionItem> Complete(CompletionContext context)
    {
        string prefix = context.WordToComplete;
        IEnumerable<string> values = Kind switch
        {
            Sort.Words => Words,
            Sort.Interface => Names("/sys/class/net", directories: true),
            Sort.Route => Names(Journal.RoutesDirectory, directories: false).Where(n => n.EndsWith(".json", StringComparison.Ordinal)).Select(n => n[..^5]),
            Sort.RouteName => ConfigRouteNames(),
            _ => [],
        };
        return values.Where(v => v.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal).Select(v => new CompletionItem(v));
    }

    /// <summary>The [route NAME] lines of via.conf, as the shells read them (a malformed file still offers its names).</summary>
    private static IEnumerable<string> ConfigRouteNames()
    {
        try
        {
            return System.IO.File.ReadLines(Planning.ViaConfig.PathInUse).Select(l => l.Split('#')[0].Trim())
                .Where(l => l.StartsWith("[route ", StringComparison.Ordinal) && l.EndsWith(']')).Select(l => l[7..^1].Trim()).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static IEnumerable<string> Names(string directory, bool directories)
    {
        try
        {
            // /sys/class/net holds symbolic links to the devices: entries, whatever their type.
            return (directories ? Directory.EnumerateFileSystemEntries(directory) : Directory.EnumerateFiles(directory)).Select(Path.GetFileName).OfType<string>().ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    public static ValueKind Of(Option option) =>
        Declared(option.CompletionSources)
        ?? (option.Arity.MaximumNumberOfValues == 0 || option.ValueType == typeof(bool) ? None : Inferred(option.GetCompletions(CompletionContext.Empty)));

    public static ValueKind Of(Argument argument) =>
        Declared(argument.CompletionSources) ?? Inferred(argument.GetCompletions(CompletionContext.Empty));

    private static ValueKind? Declared(List<Func<CompletionContext, IEnumerable<CompletionItem>>> sources) =>
        sources.Select(s => s.Target).OfType<ValueKind>().FirstOrDefault();

    private static ValueKind Inferred(IEnumerable<CompletionItem> completions) =>
        completions.Select(c => c.Label).ToArray() is { Length: > 0 } words ? OneOf(words) : Free;
}
