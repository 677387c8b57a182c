using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Via.Cli.Commands.Attach;
using Via.Cli.Commands.Run;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Mechanisms.Rules;
using Via.Planning;

namespace Via.Cli.Commands.Rule;

/// <summary>'via rule add|ls|del': standing rules, every socket of a user, a group or a program name through a route.</summary>
public static class RuleCommand
{
    public static Command Create()
    {
        var command = new Command("rule", """
            Standing rules: every socket made by a process of a user, a group or a program name leaves
            through IFACE, with IFACE's source address, whoever started the process (a service, cron, a
            login shell), until 'via rule del'. They outlive via: an eBPF program at the root of the cgroup2
            hierarchy marks each new socket as it is made (no NAT), and the route's kill switch holds when
            IFACE goes. A program already on a route of 'via run' or 'via attach' keeps that route.

              sudo via rule add --user backup --dev wg0
              sudo via rule add --comm transmission-da --dev eth1
              via rule ls
              sudo via rule del --user backup
            """);
        command.Subcommands.Add(RuleAddCommand.Create());
        command.Subcommands.Add(RuleLsCommand.Create());
        command.Subcommands.Add(RuleDelCommand.Create());
        return command;
    }

    /// <summary>--user, --group, --comm: one each for 'rule add' and 'rule del' (an option belongs to one command).</summary>
    internal sealed class Selectors
    {
        public Option<string?> User { get; } = new("--user")
        {
            Description = "A user, by name or uid: every socket made by its processes (their real uid, as the kernel's bpf_get_current_uid_gid reads it).",
            HelpName = "USER",
            CompletionSources = { ValueKind.User.Complete },
        };

        public Option<string?> Group { get; } = new("--group")
        {
            Description = "A group, by name or gid: every socket made by a process whose own group is this one (its real gid; supplementary groups do not count).",
            HelpName = "GROUP",
            CompletionSources = { ValueKind.Free.Complete },
        };

        public Option<string?> Comm { get; } = new("--comm")
        {
            Description = $"A program name as the kernel knows it (/proc/PID/comm: the first {RuleSelector.CommLength} bytes of its file name, or what it set with prctl): every socket its processes make.",
            HelpName = "NAME",
            CompletionSources = { ValueKind.Free.Complete },
        };

        public Option<string?> Dport { get; } = new("--dport")
        {
            Description = "Every connection or datagram of the host to this destination port (PROTO:PORT, tcp or udp, or a range: tcp:8000-8080).",
            HelpName = "PROTO:PORT",
            CompletionSources = { ValueKind.Free.Complete },
        };

        public IEnumerable<Option> All => [User, Group, Comm, Dport];

        /// <summary>The one selector given (with <paramref name="positional"/>, a SELECTOR argument, counted too), or why not.</summary>
        public RuleSelector? Read(ParseResult parse, string? positional, string verb, out string? error)
        {
            var given = new List<(string Kind, string Value)>();
            void Take(string kind, Option<string?> o) { if (parse.GetValue(o) is { } v) given.Add((kind, v)); }
            Take("user", User);
            Take("group", Group);
            Take("comm", Comm);
            Take("dport", Dport);
            if (positional is not null)
            {
                var parsed = RuleSelector.Parse(positional, out error);
                if (parsed is null) return null;
                given.Add((RuleSelector.KindName(parsed.Value.Kind), parsed.Value.Value));
            }
            if (given.Count != 1)
            {
                error = given.Count == 0
                    ? $"name what the rule picks out: one of --user USER, --group GROUP, --comm NAME, --dport PROTO:PORT; see 'via rule {verb} --help'"
                    : $"one selector per rule, not {given.Count} ({string.Join(", ", given.Select(g => g.Kind + ":" + g.Value))}); make one rule each";
                return null;
            }
            return RuleSelector.Make(given[0].Kind, given[0].Value, out error);
        }
    }

    internal static void WriteRule(Utf8JsonWriter w, Engine.RuleEntry e)
    {
        w.WriteStartObject();
        w.WriteString("selector", e.Selector.ToString());
        w.WriteString("kind", RuleSelector.KindName(e.Selector.Kind));
        w.WriteString("value", e.Selector.Value);
        if (e.Rule.Id is { } id) w.WriteNumber(e.Selector.Kind == SelectorKind.User ? "uid" : "gid", id);
        w.WriteString("route", e.Route.Id);
        w.WriteString("device", e.Route.Device);
        w.WriteNumber("table", e.Route.Table);
        w.WriteString("mark", $"0x{e.Route.Mark:x}");
        w.WriteString("how", e.Rule.How);
        w.WriteString("origin", e.Rule.Origin);
        w.WriteEndObject();
    }

    /// <summary>"user:alice (uid 1000)".</summary>
    internal static string Describe(StandingRule rule) =>
        rule.Id is { } id ? $"{rule.Selector} ({(rule.Selector.Kind == SelectorKind.User ? "uid" : "gid")} {id.ToString(CultureInfo.InvariantCulture)})" : rule.Selector.ToString();
}

/// <summary>'via rule add SELECTOR --dev IFACE'.</summary>
public static class RuleAddCommand
{
    public static Command Create()
    {
        var selectors = new RuleCommand.Selectors();
        var dev = new Option<string?>("--dev")
        {
            Description = "Interface the rule's sockets leave through, e.g. eth1, wlan0, wg0.",
            HelpName = "IFACE",
            CompletionSources = { ValueKind.Interface.Complete },
        };
        var gateway = new Option<IPAddress?>("--gateway")
        {
            Description = RunCommandDefinition.Gateway.Description,
            CustomParser = RunCommandDefinition.Gateway.CustomParser,
            HelpName = "IP",
        };
        var source = new Option<IPAddress?>("--src")
        {
            Description = RunCommandDefinition.Source.Description,
            CustomParser = RunCommandDefinition.Source.CustomParser,
            HelpName = "IP",
        };
        var route = RouteByName.Create("the rule");
        var replace = new Option<bool>("--replace")
        {
            Description = "If the selector has a rule on another route already, take it off that route and put it on this one (without it, that is refused).",
        };
        var json = new Option<bool>("--json") { Description = "Print the rule as one JSON object." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print each change on stderr as it is made." };
        var command = new Command("add", $"""
            Add a standing rule: every socket made from now on by a process of USER, of GROUP, or named
            NAME leaves through IFACE with IFACE's source address, whoever started the process; sockets
            made before keep their path. Exactly one selector per rule. Users and groups are resolved to
            their ids now (a renamed user keeps its rule). --user and --group match the process's real uid
            and gid (its own group, not its supplementary ones); --comm matches the kernel's name of the
            process (/proc/PID/comm, at most {RuleSelector.CommLength} bytes). A process already on a route
            of 'via run' or 'via attach' keeps that route. The rule stays after via exits, and 'via gc' keeps
            it, until 'via rule del'. Adding the same rule again changes nothing.

              sudo via rule add --user backup --dev wg0
              sudo via rule add --group media --dev eth1 --gateway 192.168.1.1
              sudo via rule add --comm syncthing --dev wg0
              sudo via rule add --dport tcp:3306 --dev eth1
              sudo via rule add --user alice --route work     # [route work] of via.conf

            --dport is the one rule that is not about who: every TCP connection or UDP datagram of the
            host to that port (of programs on no route of via's) leaves through IFACE, by a routing rule
            ('ip rule ... ipproto tcp dport 3306 lookup TABLE'), with IFACE's source address.
            """);
        foreach (var o in selectors.All) command.Options.Add(o);
        foreach (var o in new Option[] { dev, gateway, source, route, replace, json, verbose }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            if (parse.GetValue(route) is not { } name)
                return Run(parse, selectors, new RouteRequest(parse.GetValue(dev) ?? "", parse.GetValue(gateway), parse.GetValue(source)), parse.GetValue(replace), parse.GetValue(json), parse.GetValue(verbose));
            if (RouteByName.Read(parse, name, [dev, gateway, source], out string? error) is not { } named) return Say.Error(error!);
            return Run(parse, selectors, named.Request, parse.GetValue(replace), parse.GetValue(json), parse.GetValue(verbose));
        });
        return command;
    }

    private static int Run(ParseResult parse, RuleCommand.Selectors selectors, RouteRequest route, bool replace, bool json, bool verbose)
    {
        if (selectors.Read(parse, null, "add", out string? error) is not { } selector) return Say.Error(error!);
        if (route.Device.Length == 0) return Say.Error("name the interface the rule's sockets leave through: --dev IFACE (or --route NAME, a route of via.conf); see 'via rule add --help'");
        if (!Exec.IsRoot) return Say.Error("'via rule add' attaches an eBPF program and changes routing rules: it needs root; run it with sudo");
        var done = Engine.StandingRules.Add(selector, route, StandingRule.Cli, AttachCommand.Output(verbose), Engine.Fault.FromEnvironment(), replace);
        if (json)
        {
            using var stdout = Console.OpenStandardOutput();
            using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true })) RuleCommand.WriteRule(w, done.Entry);
            stdout.Write("\n"u8);
            return Engine.ExitCodes.Ok;
        }
        var r = done.Entry.Route;
        Console.WriteLine(done.Added
            ? $"rule {RuleCommand.Describe(done.Entry.Rule)} added: its new sockets leave through route {r.Id} (dev {r.Device}, table {r.Table}); 'via rule del {done.Entry.Selector}' undoes it"
            : $"rule {RuleCommand.Describe(done.Entry.Rule)} is on route {r.Id} (dev {r.Device}) already; nothing changed");
        return Engine.ExitCodes.Ok;
    }
}

/// <summary>'via rule ls [--json]'.</summary>
public static class RuleLsCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print the rules as a JSON array, for scripts." };
        var command = new Command("ls", """
            List the standing rules: what each picks out (SELECTOR: user:NAME, group:NAME, comm:NAME,
            dport:PROTO:PORT), the route it sends them through (ROUTE, as 'via ls' shows it, and its DEV),
            how (HOW: ebpf, a program marking each socket as it is made; ip-rule, a routing rule) and who
            made it (ORIGIN: cli, 'via rule add'; config, via.conf through 'via apply'). Needs no root.

              via rule ls
              via rule ls --json | jq -r '.[].selector'
            """) { json };
        command.SetAction(parse => Run(parse.GetValue(json)));
        return command;
    }

    private static int Run(bool json)
    {
        var rules = Engine.StandingRules.List();
        if (json)
        {
            using var stdout = Console.OpenStandardOutput();
            using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartArray();
                foreach (var e in rules) RuleCommand.WriteRule(w, e);
                w.WriteEndArray();
            }
            stdout.Write("\n"u8);
            return Engine.ExitCodes.Ok;
        }
        if (rules.Count == 0)
        {
            Console.WriteLine("no rules");
            return Engine.ExitCodes.Ok;
        }
        Console.WriteLine($"{"SELECTOR",-28} {"ROUTE",-8} {"DEV",-10} {"HOW",-8} ORIGIN");
        foreach (var e in rules)
            Console.WriteLine($"{RuleCommand.Describe(e.Rule),-28} {e.Route.Id,-8} {e.Route.Device,-10} {e.Rule.How,-8} {e.Rule.Origin}");
        return Engine.ExitCodes.Ok;
    }
}

/// <summary>'via rule del SELECTOR | --all'.</summary>
public static class RuleDelCommand
{
    public static Command Create()
    {
        var selectors = new RuleCommand.Selectors();
        foreach (var o in selectors.All) o.Description = "The rule to remove, as it was added (" + o.Name + " " + o.HelpName + ").";
        var selector = new Argument<string?>("selector")
        {
            Description = "The rule to remove as 'via rule ls' shows it: user:NAME, group:NAME, comm:NAME, dport:PROTO:PORT.",
            HelpName = "SELECTOR",
            Arity = ArgumentArity.ZeroOrOne,
            CompletionSources = { ValueKind.Free.Complete },
        };
        var all = new Option<bool>("--all") { Description = "Remove every standing rule (and the routes only they kept)." };
        var json = new Option<bool>("--json") { Description = "Print what was removed as a JSON array." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print each change on stderr as it is made." };
        var command = new Command("del", """
            Remove a standing rule: the sockets it picked out are made by the default path again (those
            already open keep theirs). Its route goes too when nothing else uses it.

              sudo via rule del --user backup
              sudo via rule del comm:syncthing
              sudo via rule del --all
            """) { selector };
        foreach (var o in selectors.All) command.Options.Add(o);
        foreach (var o in new Option[] { all, json, verbose }) command.Options.Add(o);
        command.SetAction(parse => Run(parse, selectors, parse.GetValue(selector), parse.GetValue(all), parse.GetValue(json), parse.GetValue(verbose)));
        return command;
    }

    private static int Run(ParseResult parse, RuleCommand.Selectors selectors, string? positional, bool all, bool json, bool verbose)
    {
        List<RuleSelector> targets;
        if (all)
        {
            if (positional is not null || selectors.All.Any(o => parse.GetResult(o) is not null))
                return Say.Error("--all removes every rule: name no selector with it");
            targets = [.. Engine.StandingRules.List().Select(e => e.Selector)];
        }
        else
        {
            if (selectors.Read(parse, positional, "del", out string? error) is not { } one) return Say.Error(error!);
            targets = [one];
        }
        if (!Exec.IsRoot) return Say.Error("'via rule del' detaches eBPF programs and changes routing rules: it needs root; run it with sudo");
        var output = AttachCommand.Output(verbose);
        var removed = new List<(Engine.RuleEntry Entry, bool RouteRemoved)>();
        foreach (var t in targets) removed.Add(Engine.StandingRules.Delete(t, output));
        if (json)
        {
            using var stdout = Console.OpenStandardOutput();
            using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartArray();
                foreach (var (e, _) in removed) RuleCommand.WriteRule(w, e);
                w.WriteEndArray();
            }
            stdout.Write("\n"u8);
            return Engine.ExitCodes.Ok;
        }
        if (removed.Count == 0) Console.WriteLine("no rules");
        foreach (var (e, gone) in removed)
            Console.WriteLine($"rule {RuleCommand.Describe(e.Rule)} removed from route {e.Route.Id}{(gone ? "; the route is removed" : "; the route stays for what else uses it")}");
        return Engine.ExitCodes.Ok;
    }
}
