using System.CommandLine;
using System.CommandLine.Parsing;
using System.Net;
using Via.Mechanisms;
using Via.Planning.Dns;

namespace Via.Cli.Commands.Run;

/// <summary>Options and arguments of 'via run'.</summary>
public static class RunCommandDefinition
{
    public static readonly Option<string> Dev = new("--dev")
    {
        Description = "Interface the program's traffic leaves through (required, unless --route names it), e.g. eth1, wlan0, wg0.",
        CompletionSources = { ValueKind.Interface.Complete },
    };

    public static readonly Option<string?> Route = new("--route")
    {
        Description = "A route of via.conf ([route NAME]): its interface, gateway, source, DNS, method and table, instead of --dev and the rest. "
            + "If the route is up ('via up NAME', 'via apply'), the program joins it: no set-up.",
        HelpName = "NAME",
        CompletionSources = { ValueKind.RouteName.Complete },
    };

    public static readonly Option<IPAddress?> Gateway = new("--gateway")
    {
        Description = "Next hop on that interface. Default: the gateway of a default route through the interface in any table; not needed on point-to-point links.",
        CustomParser = ParseAddress,
        HelpName = "IP",
    };

    public static readonly Option<IPAddress?> Source = new("--src")
    {
        Description = "Source address for the program's connections; must be one of the interface's addresses. Default: its first.",
        CustomParser = ParseAddress,
        HelpName = "IP",
    };

    public static readonly Option<uint?> Table = new("--table")
    {
        Description = "Routing table number to use for this route. Default: the first free one of via's range (22000-22254).",
        HelpName = "N",
    };

    public static readonly Option<string?> User = new("--user")
    {
        Description = "Run the program as this user (name or uid). Default: the user who ran sudo (SUDO_UID), else root. '--user root' keeps root.",
        HelpName = "USER",
        CompletionSources = { ValueKind.User.Complete },
    };

    public static readonly Option<DnsRequest?> Dns = new("--dns")
    {
        Description = "DNS servers the program asks, through its route (repeatable, or comma-separated), with its own /etc/resolv.conf "
            + "and nsswitch.conf in a mount namespace of its own; 'host' keeps the host's resolver. "
            + "Default: the interface's own servers when the host knows them (systemd-networkd, NetworkManager, dhclient), "
            + "else the host's resolver, with a warning if it would send lookups by the default route or cannot be reached.",
        CustomParser = ParseDns,
        HelpName = "IP[,IP]|host",
        Arity = ArgumentArity.OneOrMore,
        AllowMultipleArgumentsPerToken = false,
    };

    public static readonly Option<DestinationFilters?> Only = new("--only")
    {
        Description = "Only these destinations of the program take the route (repeatable, or comma-separated); the rest of its traffic "
            + "keeps the default path, with the host's usual source address. SPEC is a network (10.20.0.0/16, 2001:db8::/32, or one address), "
            + "PROTO:PORT[-PORT] (tcp:3306, udp:53, tcp:8000-8080), or both as NETWORK@PROTO:PORT (10.20.0.0/16@tcp:3306). "
            + "A network selects its own family; a port alone, IPv4 and IPv6. If the interface goes away, only these destinations fail "
            + "(EHOSTUNREACH), and a packet to one of them is never let out another way. The program's name lookups take the host's "
            + "way unless --dns names servers: those then take the route too (udp and tcp port 53). The program still may not change "
            + "its sockets' mark nor tie them to another interface (SO_BINDTODEVICE, IP_UNICAST_IF), for any destination. Not with --method netns or --ip.",
        CustomParser = ParseOnly,
        HelpName = "SPEC",
        Arity = ArgumentArity.OneOrMore,
        AllowMultipleArgumentsPerToken = false,
    };

    public static readonly Option<DirectAttachment?> Ip = new("--ip")
    {
        Description = "Attach the program to the interface's Ethernet network directly with addresses of its own (firejail's --ip): "
            + "a network namespace with a macvlan (bridge mode) on the interface, no NAT, the interface's gateway as default route. "
            + "One IPv4 and/or one IPv6 address (repeatable, or comma-separated), each with its prefix length (default: the interface's "
            + "on-link prefix that holds it). Implies --method netns. The host itself cannot reach these addresses (a macvlan talks to the network, not to its own host).",
        CustomParser = ParseIp,
        HelpName = "ADDRESS[/PREFIX][,...]",
        Arity = ArgumentArity.OneOrMore,
        AllowMultipleArgumentsPerToken = false,
    };

    public static readonly Option<string> Method = new("--method")
    {
        Description = "How the program's sockets get tagged: auto (default: the first of these that works here and can serve the program), "
            + string.Join("; ", Via.Mechanisms.Registry.All.Select(m => $"{m.Name} ({m.Summary})"))
            + ". 'via doctor' shows which work on this host.",
        HelpName = "auto|" + string.Join('|', Via.Mechanisms.Registry.All.Select(m => m.Name)),
        DefaultValueFactory = _ => Engine.MechanismChoice.Auto,
        CompletionSources = { ValueKind.OneOf([Engine.MechanismChoice.Auto, .. Via.Mechanisms.Registry.All.Select(m => m.Name)]).Complete },
    };

    public static readonly Option<bool> DryRun = new("--dry-run")
    {
        Description = "Print the plan (each step as its ip/bpftool equivalent) and change nothing. Needs no root.",
    };

    public static readonly Option<bool> Json = new("--json")
    {
        Description = "With --dry-run: print the plan as JSON.",
    };

    public static readonly Option<bool> Verbose = new("--verbose", "-v")
    {
        Description = "Print each change on stderr as it is applied and undone.",
    };

    public static readonly Argument<string[]> Command = new("command")
    {
        Description = "The program and its arguments, after '--'.",
        Arity = ArgumentArity.ZeroOrMore,
        CompletionSources = { ValueKind.Command.Complete },
    };

    public static Command Create()
    {
        var command = new Command("run",
            """
            Run a program whose traffic (IPv4 and IPv6, TCP and UDP, its children and daemons included) leaves
            through one interface, while every other program keeps its route. If the interface goes down, the
            program's connections fail with EHOSTUNREACH ("No route to host", IPv4 and IPv6 alike) instead of
            leaving another way. When the last program of the route exits, everything via set up for it is removed.

              sudo via run --dev eth1 -- curl https://example.org
              sudo via run --dev eth1 --gateway 192.168.2.1 --src 192.168.2.7 -- ./my-go-service
              sudo via run --dev wg0 --user alice -- firefox
              sudo via run --dev eth1 --dns 9.9.9.9,2620:fe::fe -- curl https://example.org   # names resolved through eth1
              sudo via run --dev eth1 --ip 192.168.1.77/24 -- firefox     # its own address on eth1's LAN (macvlan, no NAT)
              sudo via run --dev eth1 --only tcp:3306 -- ./app             # only its MySQL connections take eth1
              sudo via run --dev wg0 --only 10.20.0.0/16 --only 2001:db8::/32 -- ./app   # only these networks
              sudo via run --dev eth1 --only 10.20.0.0/16@tcp:5432 --dns 10.20.0.53 -- psql -h db.corp   # and its lookups
              sudo via run --route work -- curl https://example.org       # [route work] of via.conf
              via run --dev eth1 --dry-run -- curl https://example.org     # print the plan only
            """)
        {
            Dev, Route, Gateway, Source, Table, User, Dns, Only, Ip, Method, DryRun, Json, Verbose, Command,
        };
        command.SetAction(parse => Say.Guard(() => RunCommand.Execute(Options(parse))));
        return command;
    }

    /// <summary>What the command line asked for (also what <see cref="RunFastParse"/> must agree with).</summary>
    internal static RunOptions Options(ParseResult parse) => new(
        parse.GetValue(Dev),
        parse.GetValue(Gateway),
        parse.GetValue(Source),
        parse.GetValue(Table),
        parse.GetValue(User),
        parse.GetValue(Dns) ?? DnsRequest.Default,
        parse.GetValue(Method) ?? Engine.MechanismChoice.Auto,
        parse.GetValue(DryRun),
        parse.GetValue(Json),
        parse.GetValue(Verbose),
        parse.GetValue(Command) ?? [],
        parse.GetValue(Ip),
        parse.GetValue(Route),
        // Which options were given (not defaulted): --route refuses those it would override.
        [.. new Option[] { Dev, Gateway, Source, Table, Dns, Method, Ip }.Where(o => parse.GetResult(o) is { Implicit: false }).Select(o => o.Name)],
        parse.GetValue(Only));

    private static DnsRequest? ParseDns(ArgumentResult result)
    {
        var request = DnsRequest.Parse(result.Tokens.Select(t => t.Value).ToList(), out string? error);
        if (request is not null) return request;
        result.AddError(error!);
        return DnsRequest.Default;
    }

    private static DestinationFilters? ParseOnly(ArgumentResult result)
    {
        var only = DestinationFilters.Parse(result.Tokens.Select(t => t.Value).ToList(), out string? error);
        if (only is null) result.AddError((error ?? "--only needs a destination, e.g. --only tcp:3306") + " (option --only)");
        return only;
    }

    private static DirectAttachment? ParseIp(ArgumentResult result)
    {
        var direct = DirectAttachment.Parse(result.Tokens.Select(t => t.Value).ToList(), out string? error);
        if (direct is null) result.AddError(error! + " (option --ip)");
        return direct;
    }

    private static IPAddress? ParseAddress(ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        // IPAddress.TryParse also takes inet_aton's shorthands ("10.2.0" is 10.2.0.0): a typo, here.
        bool plausible = text.Contains(':') || text.Split('.').Length == 4;
        if (plausible && IPAddress.TryParse(text, out var address)) return address;
        result.AddError($"'{text}' is not an IPv4 or IPv6 address (option {((OptionResult)result.Parent!).Option.Name})");
        return null;
    }
}

/// <param name="Route">--route NAME: the route of via.conf (then <paramref name="Device"/> is null).</param>
/// <param name="Given">The route options given on the command line, for --route to refuse.</param>
public sealed record RunOptions(
    string? Device,
    IPAddress? Gateway,
    IPAddress? Source,
    uint? Table,
    string? User,
    DnsRequest Dns,
    string Method,
    bool DryRun,
    bool Json,
    bool Verbose,
    string[] Command,
    DirectAttachment? Ip = null,
    string? Route = null,
    IReadOnlyList<string>? Given = null,
    DestinationFilters? Only = null);
