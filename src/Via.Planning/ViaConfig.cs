using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Via.Mechanisms;
using Via.Planning.Dns;

namespace Via.Planning;

/// <summary>
/// The whole of via.conf: the flat settings at its top (<see cref="Settings"/>), then named routes
/// and standing rules in sections. Every error is "FILE:LINE: reason", and the whole file is checked
/// before anything uses it: a file with one bad line is refused as a whole (<c>via apply</c> then
/// changes nothing).
/// <code>
/// tables = 22000-22254
///
/// [route work]
/// dev = eth1
/// gateway = 192.168.1.1        # optional: found on the host
/// source = 192.168.1.77        # optional: IFACE's first address
/// dns = 9.9.9.9,2620:fe::fe    # optional: as 'via run --dns'
/// method = cgroup              # optional: auto
/// table = 22010                # optional: the first free one
///
/// [rule]
/// user = alice                 # exactly one of: user, group, comm, dport
/// route = work                 # or: dev = eth1
/// </code>
/// </summary>
public sealed partial record ViaConfig(Settings Settings, IReadOnlyList<NamedRoute> Routes, IReadOnlyList<ConfigRule> Rules)
{
    /// <summary>The file it was read from (or would be: a missing file is an empty configuration).</summary>
    public string Source => Settings.Source;

    public static readonly ViaConfig Empty = new(Settings.Default, [], []);

    /// <summary>The route of that name, or null.</summary>
    public NamedRoute? Route(string name) => Routes.FirstOrDefault(r => r.Name == name);

    /// <summary>"work, home", or "none" (for errors that list what the file has).</summary>
    public string RouteNames => Routes.Count == 0 ? $"{Source} names none" : $"{Source} has: {string.Join(", ", Routes.Select(r => r.Name))}";

    /// <summary>The path of via.conf: VIA_CONFIG, else /etc/via/via.conf.</summary>
    public static string PathInUse => Environment.GetEnvironmentVariable("VIA_CONFIG") is { Length: > 0 } p ? p : Settings.DefaultPath;

    /// <summary>Reads via.conf if there is one; a malformed file is a <see cref="PlanException"/> naming the file and line.</summary>
    public static ViaConfig Load()
    {
        string path = PathInUse;
        return File.Exists(path) ? Parse(File.ReadAllText(path), path) : Empty with { Settings = Settings.Default with { Source = path } };
    }

    // Source-generated: nothing is built at run time ('via run' reads this file at every launch).
    [GeneratedRegex(@"^\[\s*([a-z]+)(?:\s+(\S+))?\s*\]$", RegexOptions.CultureInvariant)]
    private static partial Regex SectionLine();

    /// <summary>
    /// A route's name: what 'via up', 'via run --route' and 'via down' take. Lower case, digits, '-' and
    /// '_', at most 32; never all digits nor t+digits, which 'via down' reads as a table or a route id.
    /// </summary>
    [GeneratedRegex(@"^[a-z0-9][a-z0-9_-]{0,31}$", RegexOptions.CultureInvariant)]
    private static partial Regex NameForm();

    [GeneratedRegex(@"^t?[0-9]+$", RegexOptions.CultureInvariant)]
    private static partial Regex IdLike();

    /// <summary>Why <paramref name="name"/> cannot be a route's name; null if it can.</summary>
    public static string? NameProblem(string name) =>
        !NameForm().IsMatch(name) ? $"'{name}' is not a route name: lower-case letters, digits, '-' and '_', at most 32, beginning with a letter or digit (e.g. work, wg-home)"
        : IdLike().IsMatch(name) ? $"'{name}' is not a route name: it reads as a table number or a route id (t22000); choose a word (e.g. work)"
        : null;

    /// <summary>Parses the file's text, all of it: the first malformed line is a <see cref="PlanException"/> "FILE:LINE: reason".</summary>
    public static ViaConfig Parse(string text, string source)
    {
        var settings = Settings.Default with { Source = source };
        var routes = new List<NamedRoute>();
        var rules = new List<ConfigRule>();
        Section? section = null;
        int lineNumber = 0;
        void Close()
        {
            if (section is null) return;
            if (section.IsRoute) routes.Add(section.ToRoute(source));
            else rules.Add(section.ToRule(source));
        }
        foreach (var raw in text.Split('\n'))
        {
            lineNumber++;
            string line = raw.Split('#')[0].Trim();
            if (line.Length == 0) continue;
            int at = lineNumber;
            PlanException Bad(string what) => new($"{source}:{at}: {what}");
            if (line.StartsWith('['))
            {
                var m = SectionLine().Match(line);
                if (!m.Success) throw Bad($"'{line}' is not a section: write [route NAME] or [rule]");
                string kind = m.Groups[1].Value;
                string? name = m.Groups[2].Success ? m.Groups[2].Value : null;
                Close();
                switch (kind)
                {
                    case "route":
                        if (name is null) throw Bad("a route needs a name: [route NAME], e.g. [route work]");
                        if (NameProblem(name) is { } why) throw Bad(why);
                        if (routes.FirstOrDefault(r => r.Name == name) is { } first) throw Bad($"route '{name}' is defined twice (first at line {first.Line})");
                        break;
                    case "rule":
                        if (name is not null) throw Bad($"a rule has no name: write [rule], not [rule {name}]");
                        break;
                    default:
                        throw Bad($"unknown section [{kind}] (known: [route NAME], [rule])");
                }
                section = new Section(kind == "route", name, at);
                continue;
            }
            int eq = line.IndexOf('=');
            if (eq < 0) throw Bad($"expected 'key = value', got '{line}'");
            string key = line[..eq].Trim(), value = line[(eq + 1)..].Trim();
            if (section is null)
            {
                settings = Settings.Set(settings, key, value, Bad)
                    ?? throw Bad(Section.Keys(key) is { } where
                        ? $"'{key}' belongs in a section ({where}); the settings before the first section are: {Settings.Known}"
                        : $"unknown setting '{key}' (known: {Settings.Known})");
                continue;
            }
            section.Set(key, value, at, Bad);
        }
        Close();
        foreach (var rule in rules)
        {
            if (rule.Route is { } name && routes.All(r => r.Name != name))
                throw new PlanException($"{source}:{rule.Line}: rule {rule.Selector} names route '{name}', which the file does not define ({(routes.Count == 0 ? "it defines none" : "it has: " + string.Join(", ", routes.Select(r => r.Name)))})");
        }
        return new ViaConfig(settings, routes, rules);
    }

    /// <summary>A section as it is read: its keys, with the line each came from.</summary>
    private sealed class Section(bool isRoute, string? name, int line)
    {
        private static readonly string[] RouteKeys = ["dev", "gateway", "source", "dns", "method", "table"];
        private static readonly string[] RuleKeys = ["user", "group", "comm", "dport", "route", "dev"];
        private readonly Dictionary<string, (string Value, int Line)> _values = new(StringComparer.Ordinal);

        public bool IsRoute => isRoute;

        /// <summary>Which sections take <paramref name="key"/>, for a key written before the first one.</summary>
        public static string? Keys(string key) =>
            RouteKeys.Contains(key) && RuleKeys.Contains(key) ? "[route NAME] or [rule]"
            : RouteKeys.Contains(key) ? "[route NAME]"
            : RuleKeys.Contains(key) ? "[rule]"
            : null;

        public void Set(string key, string value, int at, Func<string, PlanException> bad)
        {
            var known = isRoute ? RouteKeys : RuleKeys;
            string what = isRoute ? $"route '{name}'" : "a rule";
            if (!known.Contains(key)) throw bad($"unknown key '{key}' in {what} (known: {string.Join(", ", known)})");
            if (_values.TryGetValue(key, out var before)) throw bad($"'{key}' is set twice in {what} (first at line {before.Line})");
            if (value.Length == 0) throw bad($"'{key}' has no value");
            if (!isRoute && RuleSelectorKeys.Contains(key) && _values.Keys.FirstOrDefault(RuleSelectorKeys.Contains) is { } other)
                throw bad($"a rule has one selector: it has '{other}' already (line {_values[other].Line}); write a [rule] for each");
            if (!isRoute && key is "route" or "dev" && _values.Keys.FirstOrDefault(k => k is "route" or "dev") is { } way)
                throw bad($"a rule goes by a route or by a device, not both: it has '{way}' already (line {_values[way].Line})");
            Check(key, value, bad);
            _values[key] = (value, at);
        }

        private static readonly string[] RuleSelectorKeys = ["user", "group", "comm", "dport"];

        /// <summary>Each value checked as it is read, so the error names its own line.</summary>
        private void Check(string key, string value, Func<string, PlanException> bad)
        {
            switch (key)
            {
                case "gateway" or "source":
                    _ = Address(value) ?? throw bad($"{key} '{value}' is not an IPv4 or IPv6 address");
                    break;
                case "dns":
                    if (DnsRequest.Parse([value], out string? dnsError) is null) throw bad(dnsError!.Replace("--dns", "dns", StringComparison.Ordinal));
                    break;
                case "method":
                    if (value != AutoMethod && Registry.Find(value) is null) throw bad($"unknown method '{value}' (known: {AutoMethod}, {Registry.Names})");
                    break;
                case "table":
                    if (!value.All(char.IsAsciiDigit) || !uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out uint table) || table is 0 or (>= 253 and <= 255))
                        throw bad($"table '{value}' is not a routing table number (1-4294967295, not 253, 254, 255: the kernel's)");
                    break;
                case "route":
                    if (NameProblem(value) is { } why) throw bad(why);
                    break;
                case "dev":
                    if (value.Length > 15 || value.Any(c => c is '/' or ':' || char.IsWhiteSpace(c))) throw bad($"dev '{value}' is not an interface name (e.g. eth1)");
                    break;
                default: // a selector
                    if (RuleSelector.Make(key, value, out string? selectorError) is null) throw bad(selectorError!);
                    break;
            }
        }

        public NamedRoute ToRoute(string source)
        {
            if (!_values.TryGetValue("dev", out var dev)) throw new PlanException($"{source}:{line}: route '{name}' has no 'dev' (the interface its traffic leaves through)");
            string? Get(string key) => _values.TryGetValue(key, out var v) ? v.Value : null;
            return new NamedRoute(name!, dev.Value, Get("gateway") is { } g ? Address(g) : null, Get("source") is { } s ? Address(s) : null,
                Get("dns") is { } d ? DnsRequest.Parse([d], out _)! : DnsRequest.Default, Get("method") ?? AutoMethod,
                Get("table") is { } t ? uint.Parse(t, CultureInfo.InvariantCulture) : null, line);
        }

        public ConfigRule ToRule(string source)
        {
            string? key = _values.Keys.FirstOrDefault(RuleSelectorKeys.Contains)
                ?? throw new PlanException($"{source}:{line}: a rule needs a selector: one of user, group, comm, dport");
            var way = _values.Keys.FirstOrDefault(k => k is "route" or "dev")
                ?? throw new PlanException($"{source}:{line}: rule {key}:{_values[key].Value} needs a way out: route = NAME (a [route NAME] of this file) or dev = IFACE");
            var selector = RuleSelector.Make(key, _values[key].Value, out _)!.Value;
            return new ConfigRule(selector, way == "route" ? _values[way].Value : null, way == "dev" ? _values[way].Value : null, line);
        }
    }

    /// <summary>The method that picks the first mechanism that works ('via run --method auto').</summary>
    public const string AutoMethod = "auto";

    /// <summary>An address as --gateway and --src take it: never inet_aton's shorthands ("10.2.0" is 10.2.0.0: a typo here).</summary>
    public static IPAddress? Address(string text) =>
        (text.Contains(':') || text.Split('.').Length == 4) && !text.Contains('%') && IPAddress.TryParse(text, out var address) ? address : null;
}

/// <summary>A <c>[route NAME]</c> of via.conf: what 'via up NAME', 'via run --route NAME' and 'via apply' make.</summary>
/// <param name="Method">A mechanism's name, or "auto".</param>
/// <param name="Line">Where its section begins.</param>
public sealed record NamedRoute(string Name, string Device, IPAddress? Gateway, IPAddress? Source, DnsRequest Dns, string Method, uint? Table, int Line)
{
    /// <summary>The route as a request (its name is part of the route's key: a named route is its own).</summary>
    public RouteRequest Request => new(Device, Gateway, Source, Table, Name: Name);

    /// <summary>
    /// What the route is made from, in one line, as its journal keeps it: <c>via apply</c> re-makes a
    /// standing route whose definition changed. DNS is not in it: it is given to each program as it
    /// starts (from the file), and a change of it needs no new route.
    /// </summary>
    public string Definition => string.Join(' ',
        "dev=" + Device,
        "gateway=" + (Gateway?.ToString() ?? "-"),
        "source=" + (Source?.ToString() ?? "-"),
        "method=" + Method,
        "table=" + (Table?.ToString(CultureInfo.InvariantCulture) ?? "-"));
}

/// <summary>A <c>[rule]</c> of via.conf: a standing rule, by a route of the file (<paramref name="Route"/>) or a device.</summary>
public sealed record ConfigRule(RuleSelector Selector, string? Route, string? Device, int Line);
