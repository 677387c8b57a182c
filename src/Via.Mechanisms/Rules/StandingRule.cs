namespace Via.Mechanisms.Rules;

/// <summary>
/// A standing rule on a route (<c>via rule add</c>, a <c>[rule]</c> section of via.conf): every socket
/// its <see cref="Selector"/> picks out goes through the route, whoever started the process. The
/// route lives while it has one (<see cref="Teardown.Occupancy"/>).
/// </summary>
/// <param name="Selector">What it picks out, as the user wrote it: its identity.</param>
/// <param name="Origin">Who made it: <see cref="Cli"/> or <see cref="Config"/> (<c>via apply</c> removes only its own).</param>
/// <param name="Id">The uid or gid a user or group name was resolved to when the rule was made; null for the other kinds.</param>
public sealed record StandingRule(RuleSelector Selector, string Origin, uint? Id)
{
    public const string Cli = "cli", Config = "config";

    /// <summary>How the rule is enforced: "ebpf" (a socket-creation program keyed by a map) or "ip-rule" (a policy-routing rule).</summary>
    public string How => Selector.Kind == SelectorKind.Dport ? "ip-rule" : "ebpf";
}
