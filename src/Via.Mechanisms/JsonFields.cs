using System.Net;
using System.Text.Json;

namespace Via.Mechanisms;

/// <summary>The few helpers every journal codec uses: optional strings and addresses.</summary>
public static class JsonFields
{
    public static string? Str(JsonElement o, string name) => o.TryGetProperty(name, out var v) ? v.GetString() : null;

    public static string Need(JsonElement o, string name) => o.GetProperty(name).GetString() ?? throw new JsonException($"'{name}' is null");

    public static IPAddress? Ip(JsonElement o, string name) => Str(o, name) is { } s ? IPAddress.Parse(s) : null;

    public static void Address(Utf8JsonWriter w, string name, IPAddress? address)
    {
        if (address is not null) w.WriteString(name, address.ToString());
    }
}
