using System.Text.Json;
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
            if (!r.Owner.IsCgroup) w.WriteString("owner", r.Owner.ToString());
            if (r.Only is { } only)
            {
                w.WriteStartArray("only");
                foreach (var f in only.Items) w.WriteStringValue(f.ToString());
                w.WriteEndArray();
            }
            w.WriteString("state", r.Health);
            if (r.Waiting is not null) w.WriteString("waiting", r.Waiting);
            w.WriteNumber("repairs", r.Repairs);
            w.WriteStartObject("launch");
            w.WriteStartObject("environment");
            foreach (var (name, value) in r.Launch.Environment) w.WriteString(name, value);
            w.WriteEndObject();
            w.WriteBoolean("seccomp", r.Launch.SeccompListener);
            if (r.Launch.NetworkNamespace is not null) w.WriteString("networkNamespace", r.Launch.NetworkNamespace);
            if (r.Launch.JoinCgroups is { Count: > 0 } join)
            {
                w.WriteStartArray("joinCgroups");
                foreach (string dir in join) w.WriteStringValue(dir);
                w.WriteEndArray();
            }
            w.WriteEndObject();
            if (r.Attached.Count > 0)
            {
                w.WriteStartArray("attached");
                foreach (var a in r.Attached)
                {
                    w.WriteStartObject();
                    w.WriteNumber("pid", a.Process.Pid);
                    w.WriteNumber("start", a.Process.StartTime);
                    w.WriteString("from", a.From);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            if (r.AttachedCgroups.Count > 0)
            {
                w.WriteStartArray("attachedCgroups");
                foreach (var a in r.AttachedCgroups)
                {
                    w.WriteStartObject();
                    w.WriteString("path", a.Path);
                    if (a.Unit is not null) w.WriteString("unit", a.Unit);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            if (r.Name is not null) w.WriteString("name", r.Name);
            if (r.Standing) w.WriteBoolean("standing", true);
            if (r.Definition is not null) w.WriteString("definition", r.Definition);
            if (r.Rules.Count > 0)
            {
                w.WriteStartArray("rules");
                foreach (var rule in r.Rules)
                {
                    w.WriteStartObject();
                    w.WriteString("selector", rule.Selector.ToString());
                    w.WriteString("origin", rule.Origin);
                    if (rule.Id is { } id) w.WriteNumber("id", id);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
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
        w.WriteString("kind", change.Kind);
        change.Write(w);
        w.WriteEndObject();
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
                Owner = RouteOwner.Parse(Str(o, "owner")),
                Only = o.TryGetProperty("only", out var only) ? ReadOnly(only, source) : null,
                Health = Str(o, "state") ?? RouteHealth.Up,
                Waiting = Str(o, "waiting"),
                Repairs = o.TryGetProperty("repairs", out var repairs) ? repairs.GetInt32() : 0,
                Launch = o.TryGetProperty("launch", out var launch) ? ReadLaunch(launch) : LaunchAdditions.None,
                Attached = o.TryGetProperty("attached", out var attached)
                    ? [.. attached.EnumerateArray().Select(a => new AttachedProcess(
                        new ProcessIdentity(a.GetProperty("pid").GetInt32(), a.GetProperty("start").GetUInt64()), a.GetProperty("from").GetString()!))]
                    : [],
                AttachedCgroups = o.TryGetProperty("attachedCgroups", out var cgroups)
                    ? [.. cgroups.EnumerateArray().Select(a => new AttachedCgroup(a.GetProperty("path").GetString()!, Str(a, "unit")))]
                    : [],
                Name = Str(o, "name"),
                Standing = o.TryGetProperty("standing", out var standing) && standing.GetBoolean(),
                Definition = Str(o, "definition"),
                Rules = o.TryGetProperty("rules", out var rules) ? [.. rules.EnumerateArray().Select(ReadRule)] : [],
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or NotSupportedException)
        {
            throw new InvalidDataException($"{source}: not a via journal ({e.Message})", e);
        }
    }

    private static LaunchAdditions ReadLaunch(JsonElement o) => new(
        o.GetProperty("environment").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? ""),
        o.TryGetProperty("seccomp", out var seccomp) && seccomp.GetBoolean(),
        Str(o, "networkNamespace"),
        o.TryGetProperty("joinCgroups", out var join) ? [.. join.EnumerateArray().Select(d => d.GetString() ?? "")] : null);

    private static Rules.StandingRule ReadRule(JsonElement o)
    {
        string text = JsonFields.Need(o, "selector");
        var selector = RuleSelector.Parse(text, out string? error) ?? throw new FormatException($"rule selector '{text}': {error}");
        return new Rules.StandingRule(selector, JsonFields.Need(o, "origin"), o.TryGetProperty("id", out var id) ? id.GetUInt32() : null);
    }

    private static HostChange ReadChange(JsonElement c) => ChangeKinds.Read(c);

    private static DestinationFilters? ReadOnly(JsonElement only, string source) =>
        DestinationFilters.Parse([.. only.EnumerateArray().Select(f => f.GetString() ?? "")], out string? error)
            ?? throw new JsonException($"{source}: 'only' {error}");

    private static string? Str(JsonElement o, string name) => JsonFields.Str(o, name);
}
