using System.Net;
using Via.Mechanisms;
using Via.Planning.Dns;

namespace Via.Cli.Commands.Run;

/// <summary>
/// The common shape of 'via run' read without System.CommandLine: <c>run [OPTION VALUE | OPTION=VALUE | FLAG]... -- COMMAND [ARGS...]</c>
/// with only the options of <see cref="RunCommandDefinition"/>, each once (--dns, --ip and --only may repeat), and
/// values that System.CommandLine would take as they are. Building the command tree and parsing
/// with it costs a few tenths of a millisecond of every launch. Anything else (--help, a missing
/// '--', an unknown or repeated option, a value that looks like an option or a response file, a
/// value that does not parse) gives null, and System.CommandLine parses the whole command line as
/// before, so help, errors and their wording are its own.
/// </summary>
internal static class RunFastParse
{
    public static RunOptions? TryParse(string[] args)
    {
        if (args.Length < 2 || args[0] != "run") return null;
        string? dev = null, user = null, method = null, route = null;
        IPAddress? gateway = null, source = null;
        uint? table = null;
        List<string>? dns = null, ip = null, only = null;
        bool dryRun = false, json = false, verbose = false;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int i = 1;
        for (; i < args.Length; i++)
        {
            string token = args[i];
            if (token == "--") break;
            if (!token.StartsWith("--", StringComparison.Ordinal) && token != "-v") return null;
            string name = token;
            string? value = null;
            int equals = token.IndexOf('=');
            if (equals > 0) (name, value) = (token[..equals], token[(equals + 1)..]);
            if (name == "-v") name = "--verbose";
            if (name is not ("--dns" or "--ip" or "--only") && !seen.Add(name)) return null;
            switch (name)
            {
                case "--dry-run" or "--json" or "--verbose":
                    // A flag takes no value here; 'true'/'false' after it would be System.CommandLine's to read.
                    if (value is not null || (i + 1 < args.Length && args[i + 1] is "true" or "false")) return null;
                    if (name == "--dry-run") dryRun = true;
                    else if (name == "--json") json = true;
                    else verbose = true;
                    continue;
                case "--dev" or "--gateway" or "--src" or "--table" or "--user" or "--dns" or "--ip" or "--only" or "--method" or "--route":
                    break;
                default:
                    return null;
            }
            if (value is null)
            {
                if (++i >= args.Length) return null;
                value = args[i];
            }
            if (value.Length == 0 || value.StartsWith('-') || value.StartsWith('@')) return null;
            switch (name)
            {
                case "--dev": dev = value; break;
                case "--route": route = value; break;
                case "--user": user = value; break;
                case "--method": method = value; break;
                case "--gateway": if ((gateway = Address(value)) is null) return null; break;
                case "--src": if ((source = Address(value)) is null) return null; break;
                case "--table":
                    if (!value.All(char.IsAsciiDigit) || !uint.TryParse(value, out uint t)) return null;
                    table = t;
                    break;
                case "--dns": (dns ??= []).Add(value); break;
                case "--ip": (ip ??= []).Add(value); break;
                case "--only": (only ??= []).Add(value); break;
            }
        }
        if (i >= args.Length || (dev is null && route is null)) return null; // no '--', or no --dev: System.CommandLine says what is wrong
        if (args.Skip(i + 1).Any(a => a.StartsWith('@'))) return null; // System.CommandLine's to read, as it always was
        var request = DnsRequest.Default;
        if (dns is not null && (request = DnsRequest.Parse(dns, out _)!) is null) return null;
        DirectAttachment? direct = null;
        if (ip is not null && (direct = DirectAttachment.Parse(ip, out _)) is null) return null; // System.CommandLine says what is wrong
        DestinationFilters? filters = null;
        if (only is not null && (filters = DestinationFilters.Parse(only, out _)) is null) return null;
        // As RunCommandDefinition.Options lists them: what --route refuses beside it.
        string[] given = [.. new[] { "--dev", "--gateway", "--src", "--table", "--dns", "--method", "--ip" }.Where(o => seen.Contains(o) || (o == "--dns" && dns is not null) || (o == "--ip" && ip is not null))];
        return new RunOptions(dev, gateway, source, table, user, request, method ?? Engine.MechanismChoice.Auto, dryRun, json, verbose, args[(i + 1)..], direct, route, given, filters);
    }

    /// <summary>As <see cref="RunCommandDefinition"/>'s parser of --gateway and --src takes it; null where that one would say no.</summary>
    private static IPAddress? Address(string text)
    {
        bool plausible = text.Contains(':') || text.Split('.').Length == 4;
        return plausible && IPAddress.TryParse(text, out var address) ? address : null;
    }
}
