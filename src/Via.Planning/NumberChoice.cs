using System.Numerics;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Changes;

namespace Via.Planning;

/// <summary>
/// The mark mask and rule priority via uses on this host, and why (DESIGN.md point 13). Marks are
/// a namespace shared with every other program that routes by them, and rule priorities an order
/// shared with every other program's rules:
/// <list type="bullet">
/// <item>Mask: a run of contiguous bits (8 if possible) that no other program's rule selects on
/// (both families), outside the fields the common programs document (<see cref="KnownProgram"/>),
/// and outside the bits of exact marks seen on the host where that still leaves 4 bits or more.
/// So no rule of another program matches via's packets because of their mark, and via's rules do
/// not match packets another program marks. The mask of via's existing routes is kept while it is
/// still safe, so concurrent invocations agree. A configured mark-mask wins.</item>
/// <item>Priority: 12000, unless another program's rule before it could take via's packets whatever
/// their mark (Tailscale's 'lookup 52' at 5270, with an exit node a default route into tailscale0):
/// then just before the first such rule, still after the 'local' lookup. A configured priority wins.</item>
/// </list>
/// Pure: a function of the host view, the journal and the settings.
/// </summary>
/// <param name="FirstCatching">The first rule of another program, after the local lookup, that could take a packet marked under the mask.</param>
public sealed record NumberChoice(NumberSpace Space, string MaskReason, string PriorityReason, IReadOnlyList<string> Warnings, Rule? FirstCatching = null)
{
    public const uint DefaultPriority = 12000;
    private const uint LocalTable = 255, MainPriority = 32766;
    private const int PreferredWidth = 8, EnoughWidth = 4;

    /// <param name="networkNamespace">The namespace the host view was read in ("net:[INODE]"): only via's
    /// routes there share marks with the new one (the kernel clears a packet's mark when it crosses
    /// into another namespace), so only their mask is kept.</param>
    public static NumberChoice Choose(Settings settings, HostView host, IEnumerable<ActiveRoute> active, string networkNamespace)
    {
        active = active.Where(a => a.NetworkNamespace == networkNamespace);
        var foreign = host.Rules.Where(r => r.Protocol != Planner.Protocol).ToList();
        var warnings = new List<string>();

        // What other programs' rules select on. A mark given without a mask is matched exactly (the
        // kernel stores the mask 0xffffffff): that program owns one value, not every bit of it.
        uint hostFields = 0, hostExactBits = 0;
        foreach (var r in foreign)
        {
            if (r.Mark is not { } m) continue;
            uint k = r.MarkMask ?? uint.MaxValue;
            if (k == uint.MaxValue) hostExactBits |= m;
            else hostFields |= k | m;
        }
        // The same for marks other programs' nftables rules set or match, where the ruleset was read.
        var firewall = host.FirewallMarks ?? [];
        foreach (var f in firewall)
        {
            hostFields |= f.Field;
            if (f.Exact is { } e) hostExactBits |= e;
        }

        // Masks via's own routes use: on the host (proto 86, any state directory) and in the journal.
        var viaMasks = host.Rules.Where(r => r.Protocol == Planner.Protocol && r.MarkMask is not null).Select(r => r.MarkMask!.Value)
            .Concat(active.SelectMany(a => a.Changes.OfType<AddRule>()).Where(c => c.Rule.MarkMask is not null).Select(c => c.Rule.MarkMask!.Value))
            .Where(m => m != 0).GroupBy(m => m).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).Select(g => g.Key).ToList();

        uint mask;
        string maskReason;
        if (settings.MarkMask is { } configured)
        {
            var inTheWay = foreign.Where(r => r.Mark is { } m && r.MarkMask is { } k && k != uint.MaxValue && ((k | m) & configured) != 0).ToList();
            var inFirewall = firewall.Where(f => (f.Field & configured) != 0).Select(f => $"{f.Where} (bits 0x{f.Field:x8})").Distinct().ToList();
            if (inTheWay.Count > 0 || inFirewall.Count > 0)
                throw new PlanException($"the configured mark-mask 0x{configured:x8} ({settings.Source}) overlaps the marks that {string.Join(", ", inFirewall.Prepend(Describe(inTheWay)).Where(x => x.Length > 0))} use; remove mark-mask to let via choose free bits, or set one outside 0x{hostFields:x8}");
            mask = configured;
            maskReason = $"configured in {settings.Source}";
        }
        else if (viaMasks.FirstOrDefault(m => (m & hostFields) == 0) is var reused and not 0)
        {
            mask = reused;
            maskReason = "the mask of via's existing routes, kept so that all of via's routes agree";
        }
        else
        {
            uint oldVia = viaMasks.Aggregate(0u, (a, m) => a | m);
            uint known = KnownProgram.AllFields;
            var tiers = new (uint Avoid, int MinWidth, string Why)[]
            {
                (hostFields | hostExactBits | known | oldVia, EnoughWidth, "avoids every mark bit of this host's rules and the bits common programs document"),
                (hostFields | known | oldVia, EnoughWidth, "avoids the mark fields of this host's rules and the bits common programs document; exact marks of this host are only skipped as values"),
                (hostFields | oldVia, 1, "avoids the mark fields of this host's rules; too few bits are left to also avoid the documented bits of programs not running here"),
            };
            uint? found = null;
            string why = "";
            foreach (var (avoid, min, tierWhy) in tiers)
            {
                if (Widest(avoid, min) is { } m) { found = m; why = tierWhy; break; }
            }
            if (found is not { } chosen)
            {
                var users = firewall.Where(f => f.Field != 0).Select(f => f.Where).Distinct()
                    .Prepend(Describe(foreign.Where(r => r.Mark is not null && (r.MarkMask ?? uint.MaxValue) != uint.MaxValue).ToList())).Where(x => x.Length > 0);
                throw new PlanException($"no bit of the socket mark is free for via: {string.Join(", ", users)} select on all of them (0x{hostFields:x8}); via cannot route a program by mark beside them");
            }
            mask = chosen;
            maskReason = why;
            var overlapped = KnownProgram.All.Where(p => (p.Field & mask) != 0).Select(p => p.Name).ToList();
            if (overlapped.Count > 0)
                warnings.Add($"mask 0x{mask:x8} overlaps the documented mark bits of {string.Join(", ", overlapped)}: if one of them starts later, routes made before keep this mask and may collide with it (new routes then choose again)");
        }
        if (firewall.Count > 0 && settings.MarkMask is null)
            maskReason += $"; the marks of {string.Join(", ", firewall.Select(f => f.Where).Distinct())} count as this host's";
        var skipped = KnownProgram.All.Where(p => p.Exact is { } e && (e & mask) != 0).Select(p => $"0x{p.Exact!.Value & mask:x} ({p.Name})").ToList();
        if (skipped.Count > 0) maskReason += $"; values {string.Join(", ", skipped)} are not handed out";

        // Priority: via's rules must come after the local table's lookup (loopback and the host's own
        // addresses) and before any other rule that could take a packet of mark under the mask.
        uint localAt = foreign.Where(r => r.Table == LocalTable && r.Action == RuleAction.ToTable && r.Mark is null && r.Source is null && r.Destination is null && !r.Invert)
            .Select(r => r.Priority).DefaultIfEmpty(0u).Max();
        var first = foreign.Where(r => r.Priority > localAt && r.Table != LocalTable && CouldTake(r, mask)).OrderBy(r => r.Priority).FirstOrDefault();
        uint priority;
        string priorityReason;
        if (settings.Priority is { } wanted)
        {
            priority = wanted;
            priorityReason = $"configured in {settings.Source}";
            if (first is not null && first.Priority <= wanted)
                warnings.Add($"rule {Explain(first)} comes before via's configured priority {wanted} and can take via's packets (the egress guard then drops them); set priority below {first.Priority} or remove it to let via choose");
            if (wanted <= localAt)
                warnings.Add($"the configured priority {wanted} comes before the 'lookup local' rule at {localAt}: a routed program cannot reach this host's own addresses");
        }
        else
        {
            uint upper = first is null ? DefaultPriority + 1 : Math.Min(first.Priority, DefaultPriority + 1);
            var taken = foreign.Select(r => r.Priority).ToHashSet();
            uint p = upper - 1;
            while (p > localAt && taken.Contains(p)) p--;
            if (p <= localAt)
                throw new PlanException($"no rule priority is free for via between the 'lookup local' rule at {localAt} and {(first is null ? $"priority {upper}" : "rule " + Explain(first))}, which would take via's packets; set priority in {settings.Source}");
            priority = p;
            priorityReason = first is null || first.Priority > DefaultPriority
                ? $"no other program's rule before {DefaultPriority} can take via's packets"
                : $"just before rule {Explain(first)}, which would take via's packets";
        }

        return new NumberChoice(new NumberSpace(settings.FirstTable, settings.Count, mask, priority), maskReason, priorityReason, warnings, first);
    }

    /// <summary>
    /// via's fwmark rules already on the host that come at or after <see cref="FirstCatching"/>: made
    /// before that program's rule appeared, their packets now meet it first (and the egress guard drops them).
    /// </summary>
    public IEnumerable<Rule> Overtaken(HostView host) =>
        FirstCatching is not { } f ? [] : host.Rules.Where(r => r.Protocol == Planner.Protocol && r.Mark is not null && r.Priority >= f.Priority);

    /// <summary>One line naming the overtaken rules' tables, or null.</summary>
    public string? OvertakenWarning(HostView host)
    {
        var tables = Overtaken(host).Select(r => r.Table).Distinct().Order().ToList();
        return tables.Count == 0 ? null
            : $"via's rules for table(s) {string.Join(", ", tables)} come after rule {Explain(FirstCatching!)}, which now takes their packets (their programs are cut off); 'via down' and run them again to get rules before it";
    }

    /// <summary>
    /// Whether a rule of another program could match a packet whose mark has bits under
    /// <paramref name="mask"/> only: locally sent packets carry iif 'lo'; any other selector
    /// (source, destination, oif, ports...) may or may not match, so it counts as a match.
    /// </summary>
    public static bool CouldTake(Rule r, uint mask)
    {
        bool markMay = true, markAlways = true;
        if (r.Mark is { } m)
        {
            uint k = r.MarkMask ?? uint.MaxValue;
            if ((k & mask) == 0) markMay = markAlways = m == 0; // via's mark & k is 0: only a mark value of 0 matches it
            else markAlways = false;                           // a configured mask that overlaps: assume the worst
        }
        bool may = (r.InputInterface is null or "lo") && markMay;
        bool always = r.InputInterface is null && r.OutputInterface is null && (r.Source is null || r.SourceLength == 0)
            && (r.Destination is null || r.DestinationLength == 0) && !r.OtherSelectors && r.IpProtocol == 0 && r.DestinationPorts is null && markAlways;
        return r.Invert ? !always : may;
    }

    /// <summary>The widest run of contiguous bits (at most 8, at least <paramref name="minWidth"/>) outside <paramref name="avoid"/>; the highest such run.</summary>
    public static uint? Widest(uint avoid, int minWidth)
    {
        for (int width = PreferredWidth; width >= minWidth; width--)
        {
            uint run = (1u << width) - 1;
            for (int shift = 32 - width; shift >= 0; shift--)
                if (((run << shift) & avoid) == 0) return run << shift;
        }
        return null;
    }

    /// <summary>"Tailscale (pref 5210, 5230)", one entry per known program, and each rule of an unknown one.</summary>
    public static string Describe(IReadOnlyList<Rule> rules) => string.Join(", ", rules.GroupBy(r => KnownProgram.Owner(r)?.Name).SelectMany(g => g.Key is { } name
        ? [$"{name} (pref {string.Join(", ", g.Select(r => r.Priority).Distinct())})"]
        : g.Select(r => $"an unknown program ({Text(r)})").Distinct()));

    /// <summary>A rule as 'ip rule' shows it, with the program it belongs to where known: "pref 5270 lookup 52, Tailscale's".</summary>
    public static string Explain(Rule r) => Text(r) + (KnownProgram.Owner(r) is { } p ? $", {p.Name}'s" : ", another program's");

    private static string Text(Rule r) =>
        $"pref {r.Priority}{(r.Invert ? " not" : "")}{(r.Source is null || r.SourceLength == 0 ? "" : $" from {r.Source}/{r.SourceLength}")}"
        + $"{(r.Destination is null || r.DestinationLength == 0 ? "" : $" to {r.Destination}/{r.DestinationLength}")}"
        + $"{(r.InputInterface is null ? "" : $" iif {r.InputInterface}")}{(r.OutputInterface is null ? "" : $" oif {r.OutputInterface}")}"
        + $"{(r.Mark is { } m ? $" fwmark 0x{m:x}" + (r.MarkMask is { } k && k != uint.MaxValue ? $"/0x{k:x}" : "") : "")}"
        + $"{(r.IpProtocol == 0 ? "" : $" ipproto {AddRule.IpProtocolName(r.IpProtocol)}")}{(r.DestinationPorts is { } d ? $" dport {d}" : "")}"
        + $" {(r.Action == RuleAction.ToTable ? $"lookup {r.Table}" : r.Action == RuleAction.Unreachable ? "unreachable" : $"action {(byte)r.Action}")}"
        + $"{(r.SuppressPrefixLength is { } sp ? $" suppress_prefixlength {sp}" : "")}";

    public string Describe() =>
        $"mark mask 0x{Space.MarkMask:x8} ({MaskReason}); rule priority {Space.Priority} ({PriorityReason})";
}
