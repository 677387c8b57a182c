using System.Net.Sockets;
using System.Text.Json;
using Via.Kernel.Netlink;

namespace Via.Mechanisms.Changes;

/// <summary>A policy-routing rule: <c>ip rule add [from SRC] [to DST] [fwmark M/MASK] [ipproto tcp] [dport A-B] lookup T pref P proto via</c>.</summary>
public sealed record AddRule(Rule Rule) : HostChange
{
    public override string Command => "ip " + Text(Rule, "add");
    public override string UndoCommand => "ip " + Text(Rule, "del");

    public static readonly ChangeCodec Codec = new("rule", c => new AddRule(new Rule(
        (AddressFamily)c.GetProperty("family").GetInt32(),
        c.GetProperty("priority").GetUInt32(),
        c.GetProperty("table").GetUInt32(),
        (RuleAction)c.GetProperty("action").GetByte(),
        c.TryGetProperty("mark", out var m) ? m.GetUInt32() : null,
        c.TryGetProperty("markMask", out var mm) ? mm.GetUInt32() : null,
        JsonFields.Ip(c, "source"),
        c.GetProperty("sourceLength").GetByte(),
        c.GetProperty("protocol").GetByte(),
        JsonFields.Ip(c, "destination"),
        c.TryGetProperty("destinationLength", out var dl) ? dl.GetByte() : (byte)0,
        IpProtocol: c.TryGetProperty("ipProtocol", out var ip) ? ip.GetByte() : (byte)0,
        DestinationPorts: c.TryGetProperty("dportFirst", out var f) ? new PortRange(f.GetUInt16(), c.GetProperty("dportLast").GetUInt16()) : null)));

    public override string Kind => Codec.Kind;

    public override void Write(Utf8JsonWriter w)
    {
        w.WriteNumber("family", (int)Rule.Family);
        w.WriteNumber("priority", Rule.Priority);
        w.WriteNumber("table", Rule.Table);
        w.WriteNumber("action", (byte)Rule.Action);
        if (Rule.Mark is { } mark) w.WriteNumber("mark", mark);
        if (Rule.MarkMask is { } mask) w.WriteNumber("markMask", mask);
        JsonFields.Address(w, "source", Rule.Source);
        w.WriteNumber("sourceLength", Rule.SourceLength);
        w.WriteNumber("protocol", Rule.Protocol);
        // The destination selectors only when set: journals written before them read the same.
        if (Rule.Destination is not null)
        {
            JsonFields.Address(w, "destination", Rule.Destination);
            w.WriteNumber("destinationLength", Rule.DestinationLength);
        }
        if (Rule.IpProtocol != 0) w.WriteNumber("ipProtocol", Rule.IpProtocol);
        if (Rule.DestinationPorts is { } ports)
        {
            w.WriteNumber("dportFirst", ports.First);
            w.WriteNumber("dportLast", ports.Last);
        }
    }

    public override void Apply(Host host) => host.Rtnl.Add(Rule);
    public override bool Undo(Host host) => host.Rtnl.Delete(Rule);
    public override RtnlRequest ApplyRequest => Rtnl.AddRequest(Rule);
    public override RtnlRequest UndoRequest => Rtnl.DeleteRequest(Rule);

    private static string Text(Rule r, string verb)
    {
        var s = new System.Text.StringBuilder(r.Family == AddressFamily.InterNetworkV6 ? "-6 rule " : "rule ").Append(verb);
        s.Append(" pref ").Append(r.Priority);
        if (r.Source is not null) s.Append(" from ").Append(r.Source).Append('/').Append(r.SourceLength);
        if (r.Destination is not null) s.Append(" to ").Append(r.Destination).Append('/').Append(r.DestinationLength);
        if (r.Mark is { } m) s.Append($" fwmark 0x{m:x}").Append(r.MarkMask is { } mask ? $"/0x{mask:x}" : "");
        if (r.IpProtocol != 0) s.Append(" ipproto ").Append(IpProtocolName(r.IpProtocol));
        if (r.DestinationPorts is { } ports) s.Append(" dport ").Append(ports);
        s.Append(r.Action == RuleAction.Unreachable ? " unreachable" : $" lookup {r.Table}");
        if (r.Protocol != 0) s.Append(" proto ").Append(r.Protocol);
        return s.ToString();
    }

    /// <summary>"tcp", "udp", or the number, as ip rule's 'ipproto' takes it.</summary>
    public static string IpProtocolName(byte protocol) => protocol switch { 6 => "tcp", 17 => "udp", 58 => "ipv6-icmp", 1 => "icmp", _ => protocol.ToString(System.Globalization.CultureInfo.InvariantCulture) };
}
