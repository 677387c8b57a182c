using System.Text.Json;

namespace Via.Mechanisms;

/// <summary>
/// A packet mark another program's firewall sets or matches, read from the nftables ruleset.
/// <paramref name="Field"/>: bits it sets, clears or matches under a mask (it owns them);
/// <paramref name="Exact"/>: a whole mark it sets or matches exactly (it owns that value only).
/// </summary>
public sealed record FirewallMark(uint Field, uint? Exact, string Where);

/// <summary>Finds the socket marks in <c>nft -j list ruleset</c> output (libnftables' JSON schema, libnftables-json(5)).</summary>
public static class FirewallMarks
{
    /// <summary>The nftables tables of via's own (DESIGN.md point 9): "via" and the nft mechanism's "via_tNNN". Their marks are via's.</summary>
    public const string OwnTable = "via";

    private static bool IsOwn(string? table) => table == OwnTable || table?.StartsWith(OwnTable + "_", StringComparison.Ordinal) == true;

    /// <summary>
    /// Every rule's 'meta mark set' and 'meta mark' matches: 'meta mark set meta mark and A or B'
    /// owns ~A and B, 'meta mark and M == V' owns M (and V), 'meta mark set V' and 'meta mark V'
    /// own the value V. A mark copied from elsewhere (ct mark) or an iptables-nft 'xt' target cannot
    /// be read; via's table of documented marks covers the common programs there. A malformed
    /// document gives nothing (a refinement, never an error).
    /// </summary>
    public static List<FirewallMark> Parse(string? json)
    {
        var found = new List<FirewallMark>();
        if (string.IsNullOrEmpty(json)) return found;
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (!doc.RootElement.TryGetProperty("nftables", out var items) || items.ValueKind != JsonValueKind.Array) return found;
            foreach (var item in items.EnumerateArray())
            {
                if (!item.TryGetProperty("rule", out var rule) || !rule.TryGetProperty("expr", out var exprs) || exprs.ValueKind != JsonValueKind.Array) continue;
                if (IsOwn(Str(rule, "table"))) continue;
                string where = $"nftables table {Str(rule, "family")} {Str(rule, "table")} chain {Str(rule, "chain")}";
                foreach (var e in exprs.EnumerateArray())
                {
                    if (e.TryGetProperty("mangle", out var mangle) && IsMetaMark(mangle, "key") && mangle.TryGetProperty("value", out var value))
                        Set(value, where, found);
                    else if (e.TryGetProperty("match", out var match) && match.TryGetProperty("left", out var left) && match.TryGetProperty("right", out var right))
                        Match(left, right, where, found);
                }
            }
        }
        catch (JsonException)
        {
            return [];
        }
        return found;
    }

    private static void Set(JsonElement value, string where, List<FirewallMark> found)
    {
        if (Number(value) is { } whole) { found.Add(new(0, whole, where)); return; }
        // (mark & A) | B, (mark & A) ^ B, nested: the constant of an '&' keeps bits, the others set or flip them.
        uint field = 0;
        var e = value;
        while (e.ValueKind == JsonValueKind.Object)
        {
            var op = e.EnumerateObject().FirstOrDefault();
            if (op.Value.ValueKind != JsonValueKind.Array || op.Value.GetArrayLength() != 2) break;
            var inner = op.Value[0];
            if (Number(op.Value[1]) is not { } c) break;
            field |= op.Name == "&" ? ~c : c;
            e = inner;
        }
        if (field != 0 && IsMetaMark(e)) found.Add(new(field, null, where));
    }

    private static void Match(JsonElement left, JsonElement right, string where, List<FirewallMark> found)
    {
        uint? v = Number(right);
        if (IsMetaMark(left))
        {
            if (v is { } exact) found.Add(new(0, exact, where));
        }
        else if (left.TryGetProperty("&", out var and) && and.ValueKind == JsonValueKind.Array && and.GetArrayLength() == 2
                 && IsMetaMark(and[0]) && Number(and[1]) is { } mask)
        {
            found.Add(new(mask | (v ?? 0), null, where));
        }
    }

    private static bool IsMetaMark(JsonElement e) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty("meta", out var meta) && meta.ValueKind == JsonValueKind.Object
        && meta.TryGetProperty("key", out var key) && key.ValueKind == JsonValueKind.String && key.GetString() == "mark";

    private static bool IsMetaMark(JsonElement parent, string property) => parent.TryGetProperty(property, out var e) && IsMetaMark(e);

    private static uint? Number(JsonElement e) => e.ValueKind == JsonValueKind.Number && e.TryGetUInt32(out uint n) ? n : null;

    private static string Str(JsonElement e, string property) =>
        e.TryGetProperty(property, out var p) && p.ValueKind == JsonValueKind.String ? p.GetString()! : "?";
}
