using System.Net.Sockets;
using System.Text.Json;
using Via.Kernel.Netlink;

namespace Via.Mechanisms.Changes;

/// <summary>A route in via's table: <c>ip route add ... table T proto via</c>.</summary>
/// <param name="Device">The name of <see cref="Route.OutputLink"/>, for printing.</param>
public sealed record AddRoute(Route Route, string? Device = null) : HostChange
{
    public override string Command => "ip " + Text(Route, Device, "add");
    public override string UndoCommand => "ip " + Text(Route, Device, "del");

    public static readonly ChangeCodec Codec = new("route", c => new AddRoute(new Route(
        (AddressFamily)c.GetProperty("family").GetInt32(),
        c.GetProperty("table").GetUInt32(),
        (RouteType)c.GetProperty("type").GetByte(),
        JsonFields.Ip(c, "destination"),
        c.GetProperty("destinationLength").GetByte(),
        JsonFields.Ip(c, "gateway"),
        c.GetProperty("outputLink").GetInt32(),
        JsonFields.Ip(c, "preferredSource"),
        c.GetProperty("metric").GetUInt32(),
        c.GetProperty("protocol").GetByte(),
        c.GetProperty("scope").GetByte()), JsonFields.Str(c, "device")));

    public override string Kind => Codec.Kind;

    public override void Write(Utf8JsonWriter w)
    {
        if (Device is not null) w.WriteString("device", Device);
        w.WriteNumber("family", (int)Route.Family);
        w.WriteNumber("table", Route.Table);
        w.WriteNumber("type", (byte)Route.Type);
        JsonFields.Address(w, "destination", Route.Destination);
        w.WriteNumber("destinationLength", Route.DestinationLength);
        JsonFields.Address(w, "gateway", Route.Gateway);
        w.WriteNumber("outputLink", Route.OutputLink);
        JsonFields.Address(w, "preferredSource", Route.PreferredSource);
        w.WriteNumber("metric", Route.Metric);
        w.WriteNumber("protocol", Route.Protocol);
        w.WriteNumber("scope", Route.Scope);
    }

    public override void Apply(Host host) => host.Rtnl.Add(Route);
    public override bool Undo(Host host) => host.Rtnl.Delete(Route);
    public override RtnlRequest ApplyRequest => Rtnl.AddRequest(Route);
    public override RtnlRequest UndoRequest => Rtnl.DeleteRequest(Route);

    private static string Text(Route r, string? device, string verb)
    {
        var s = new System.Text.StringBuilder(r.Family == AddressFamily.InterNetworkV6 ? "-6 route " : "route ").Append(verb).Append(' ');
        if (r.Type == RouteType.Unreachable) s.Append("unreachable ");
        s.Append(r.IsDefault ? "default" : $"{r.Destination}/{r.DestinationLength}");
        if (r.Gateway is not null) s.Append(" via ").Append(r.Gateway);
        if (r.OutputLink != 0) s.Append(" dev ").Append(device ?? $"if{r.OutputLink}");
        if (r.PreferredSource is not null) s.Append(" src ").Append(r.PreferredSource);
        if (r.Metric != 0) s.Append(" metric ").Append(r.Metric);
        s.Append(" table ").Append(r.Table);
        if (r.Protocol != 0) s.Append(" proto ").Append(r.Protocol);
        return s.ToString();
    }
}
