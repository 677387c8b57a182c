using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Via.Kernel.Netlink;
using Via.Kernel.Processes;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms;

/// <summary>
/// The journal's JSON, written with Utf8JsonWriter and read with JsonDocument. Written by hand
/// rather than by the serializer: the serializer's first use costs about a millisecond of
/// metadata set-up, paid twice by every 'via run' (write at set-up, read at teardown), a fifth of
/// the launch budget. The format is plain JSON a person can read.
/// </summary>
internal static class JournalCodec
{
    private static readonly JsonWriterOptions Indented = new() { Indented = true };

    public static byte[] Encode(ActiveRoute r)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, Indented))
        {
            w.WriteStartObject();
            w.WriteString("id", r.Id);
            w.WriteString("key", r.Key);
            w.WriteString("networkNamespace", r.NetworkNamespace);
            w.WriteString("created", r.Created);
            w.WriteString("device", r.Device);
            if (r.Gateway is not null) w.WriteString("gateway", r.Gateway);
            w.WriteNumber("mark", r.Mark);
            w.WriteNumber("table", r.Table);
            w.WriteString("mechanism", r.Mechanism);
            if (r.Cgroup is not null) w.WriteString("cgroup", r.Cgroup);
            w.WriteStartArray("users");
            foreach (var u in r.Users)
            {
                w.WriteStartObject();
                w.WriteNumber("pid", u.Pid);
                w.WriteNumber("start", u.StartTime);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteBoolean("down", r.Down);
            if (r.RequestedGateway is not null) w.WriteString("requestedGateway", r.RequestedGateway);
            if (r.RequestedSource is not null) w.WriteString("requestedSource", r.RequestedSource);
            if (r.RequestedTable is { } requestedTable) w.WriteNumber("requestedTable", requestedTable);
            w.WriteString("state", r.Health);
            if (r.Waiting is not null) w.WriteString("waiting", r.Waiting);
            w.WriteNumber("repairs", r.Repairs);
            w.WriteStartArray("changes");
            foreach (var c in r.Changes) WriteChange(w, c);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static void WriteChange(Utf8JsonWriter w, HostChange change)
    {
        w.WriteStartObject();
        switch (change)
        {
            case AddRoute(var route, var device):
                w.WriteString("kind", "route");
                if (device is not null) w.WriteString("device", device);
                w.WriteNumber("family", (int)route.Family);
                w.WriteNumber("table", route.Table);
                w.WriteNumber("type", (byte)route.Type);
                Address(w, "destination", route.Destination);
                w.WriteNumber("destinationLength", route.DestinationLength);
                Address(w, "gateway", route.Gateway);
                w.WriteNumber("outputLink", route.OutputLink);
                Address(w, "preferredSource", route.PreferredSource);
                w.WriteNumber("metric", route.Metric);
                w.WriteNumber("protocol", route.Protocol);
                w.WriteNumber("scope", route.Scope);
                break;
            case AddRule(var rule):
                w.WriteString("kind", "rule");
                w.WriteNumber("family", (int)rule.Family);
                w.WriteNumber("priority", rule.Priority);
                w.WriteNumber("table", rule.Table);
                w.WriteNumber("action", (byte)rule.Action);
                if (rule.Mark is { } mark) w.WriteNumber("mark", mark);
                if (rule.MarkMask is { } mask) w.WriteNumber("markMask", mask);
                Address(w, "source", rule.Source);
                w.WriteNumber("sourceLength", rule.SourceLength);
                w.WriteNumber("protocol", rule.Protocol);
                break;
            case CreateCgroup(var path):
                w.WriteString("kind", "cgroup");
                w.WriteString("path", path);
                break;
            case AttachSocketMark(var markCgroup, var markValue):
                w.WriteString("kind", "sock-mark");
                w.WriteString("cgroup", markCgroup);
                w.WriteNumber("mark", markValue);
                break;
            case AttachSetsockoptGuard(var cgroup, var guardIndex):
                w.WriteString("kind", "setsockopt-guard");
                w.WriteString("cgroup", cgroup);
                w.WriteNumber("ifindex", guardIndex);
                break;
            case Guard.AttachEgressGuard(var egressCgroup, var egressIndex, var egressDevice):
                w.WriteString("kind", "egress-guard");
                w.WriteString("cgroup", egressCgroup);
                w.WriteNumber("ifindex", egressIndex);
                w.WriteString("device", egressDevice);
                break;
            case MountCgroup2(var target):
                w.WriteString("kind", "mount-cgroup2");
                w.WriteString("target", target);
                break;
            default:
                throw new NotSupportedException($"journal: no encoding for {change.GetType().Name}");
        }
        w.WriteEndObject();
    }

    private static void Address(Utf8JsonWriter w, string name, IPAddress? address)
    {
        if (address is not null) w.WriteString(name, address.ToString());
    }

    public static ActiveRoute Decode(ReadOnlySpan<byte> json, string source)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            var o = doc.RootElement;
            return new ActiveRoute(
                o.GetProperty("id").GetString()!,
                o.GetProperty("key").GetString()!,
                o.GetProperty("networkNamespace").GetString()!,
                o.GetProperty("created").GetDateTimeOffset(),
                o.GetProperty("device").GetString()!,
                Str(o, "gateway"),
                o.GetProperty("mark").GetUInt32(),
                o.GetProperty("table").GetUInt32(),
                o.GetProperty("mechanism").GetString()!,
                Str(o, "cgroup"),
                [.. o.GetProperty("users").EnumerateArray().Select(u => new ProcessIdentity(u.GetProperty("pid").GetInt32(), u.GetProperty("start").GetUInt64()))],
                o.GetProperty("down").GetBoolean(),
                [.. o.GetProperty("changes").EnumerateArray().Select(ReadChange)])
            {
                // Journals of an earlier via have none of these: a route as it was made, never repaired.
                RequestedGateway = Str(o, "requestedGateway"),
                RequestedSource = Str(o, "requestedSource"),
                RequestedTable = o.TryGetProperty("requestedTable", out var rt) ? rt.GetUInt32() : null,
                Health = Str(o, "state") ?? RouteHealth.Up,
                Waiting = Str(o, "waiting"),
                Repairs = o.TryGetProperty("repairs", out var repairs) ? repairs.GetInt32() : 0,
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or NotSupportedException)
        {
            throw new InvalidDataException($"{source}: not a via journal ({e.Message})", e);
        }
    }

    private static HostChange ReadChange(JsonElement c) => c.GetProperty("kind").GetString() switch
    {
        "route" => new AddRoute(new Route(
            (AddressFamily)c.GetProperty("family").GetInt32(),
            c.GetProperty("table").GetUInt32(),
            (RouteType)c.GetProperty("type").GetByte(),
            Ip(c, "destination"),
            c.GetProperty("destinationLength").GetByte(),
            Ip(c, "gateway"),
            c.GetProperty("outputLink").GetInt32(),
            Ip(c, "preferredSource"),
            c.GetProperty("metric").GetUInt32(),
            c.GetProperty("protocol").GetByte(),
            c.GetProperty("scope").GetByte()), Str(c, "device")),
        "rule" => new AddRule(new Rule(
            (AddressFamily)c.GetProperty("family").GetInt32(),
            c.GetProperty("priority").GetUInt32(),
            c.GetProperty("table").GetUInt32(),
            (RuleAction)c.GetProperty("action").GetByte(),
            c.TryGetProperty("mark", out var m) ? m.GetUInt32() : null,
            c.TryGetProperty("markMask", out var mm) ? mm.GetUInt32() : null,
            Ip(c, "source"),
            c.GetProperty("sourceLength").GetByte(),
            c.GetProperty("protocol").GetByte())),
        "cgroup" => new CreateCgroup(c.GetProperty("path").GetString()!),
        "sock-mark" => new AttachSocketMark(c.GetProperty("cgroup").GetString()!, c.GetProperty("mark").GetUInt32()),
        "setsockopt-guard" => new AttachSetsockoptGuard(c.GetProperty("cgroup").GetString()!, c.GetProperty("ifindex").GetInt32()),
        "egress-guard" => new Guard.AttachEgressGuard(c.GetProperty("cgroup").GetString()!, c.GetProperty("ifindex").GetInt32(), c.GetProperty("device").GetString()!),
        "mount-cgroup2" => new MountCgroup2(c.GetProperty("target").GetString()!),
        var kind => throw new NotSupportedException($"unknown change kind '{kind}'"),
    };

    private static string? Str(JsonElement o, string name) => o.TryGetProperty(name, out var v) ? v.GetString() : null;

    private static IPAddress? Ip(JsonElement o, string name) => Str(o, name) is { } s ? IPAddress.Parse(s) : null;
}
