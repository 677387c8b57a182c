using System.Net.Sockets;
using Via.Kernel.Netlink;

namespace Via.Mechanisms.Changes;

/// <summary>A policy-routing rule: <c>ip rule add [from SRC] [fwmark M/MASK] lookup T pref P proto via</c>.</summary>
public sealed record AddRule(Rule Rule) : HostChange
{
    public override string Command => "ip " + Text(Rule, "add");
    public override string UndoCommand => "ip " + Text(Rule, "del");

    public override void Apply(Host host) => host.Rtnl.Add(Rule);
    public override bool Undo(Host host) => host.Rtnl.Delete(Rule);
    public override RtnlRequest ApplyRequest => Rtnl.AddRequest(Rule);
    public override RtnlRequest UndoRequest => Rtnl.DeleteRequest(Rule);

    private static string Text(Rule r, string verb)
    {
        var s = new System.Text.StringBuilder(r.Family == AddressFamily.InterNetworkV6 ? "-6 rule " : "rule ").Append(verb);
        s.Append(" pref ").Append(r.Priority);
        if (r.Source is not null) s.Append(" from ").Append(r.Source).Append('/').Append(r.SourceLength);
        if (r.Mark is { } m) s.Append($" fwmark 0x{m:x}").Append(r.MarkMask is { } mask ? $"/0x{mask:x}" : "");
        s.Append(r.Action == RuleAction.Unreachable ? " unreachable" : $" lookup {r.Table}");
        if (r.Protocol != 0) s.Append(" proto ").Append(r.Protocol);
        return s.ToString();
    }
}
