using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms;

/// <summary>
/// One route as via made it, written to /run/via/routes/ID.json before the first change is
/// applied (every undo tolerates a change that never happened), and removed after the last undo.
/// Concurrent invocations asking for the same route (same <see cref="Key"/>) share it; the route
/// stays while any of its <see cref="Users"/> (via processes) lives or its cgroup has a process.
/// The reaper, <c>via down</c> and <c>via gc</c> undo from it.
/// </summary>
/// <param name="NetworkNamespace">The network namespace its rules and routes live in ("net:[INODE]").</param>
/// <param name="Down">Set by <c>via down</c>: the route's way out is gone and its programs are cut off until they exit.</param>
public sealed record ActiveRoute(
    string Id,
    string Key,
    string NetworkNamespace,
    DateTimeOffset Created,
    string Device,
    string? Gateway,
    uint Mark,
    uint Table,
    string Mechanism,
    string? Cgroup,
    List<int> Users,
    bool Down,
    List<HostChange> Changes);

public static class Journal
{
    /// <summary>via's state directory; VIA_STATE_DIR overrides it (tests).</summary>
    public static string StateDirectory => Environment.GetEnvironmentVariable("VIA_STATE_DIR") is { Length: > 0 } d ? d : "/run/via";

    public static string RoutesDirectory => Path.Combine(StateDirectory, "routes");

    public static string LockPath => Path.Combine(StateDirectory, "lock");

    public static string PathOf(string id) => Path.Combine(RoutesDirectory, id + ".json");

    public static void Write(ActiveRoute route)
    {
        Directory.CreateDirectory(RoutesDirectory);
        string path = PathOf(route.Id), temp = path + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(route, JournalJson.Default.ActiveRoute));
        File.Move(temp, path, overwrite: true);
    }

    public static ActiveRoute Read(string path) =>
        JsonSerializer.Deserialize(File.ReadAllText(path), JournalJson.Default.ActiveRoute)
        ?? throw new InvalidDataException($"{path}: empty journal");

    public static IEnumerable<(string Path, ActiveRoute Route)> ReadAll()
    {
        if (!Directory.Exists(RoutesDirectory)) yield break;
        foreach (var path in Directory.EnumerateFiles(RoutesDirectory, "*.json"))
        {
            ActiveRoute? route = null;
            try { route = Read(path); } catch (Exception e) when (e is IOException or JsonException or InvalidDataException) { }
            if (route is not null) yield return (path, route);
        }
    }

    public static void Remove(string id) => File.Delete(PathOf(id));
}

internal sealed class IPAddressConverter : JsonConverter<IPAddress>
{
    public override IPAddress? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.GetString() is { } s ? IPAddress.Parse(s) : null;

    public override void Write(Utf8JsonWriter writer, IPAddress value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString());
}

[JsonSourceGenerationOptions(WriteIndented = true, Converters = [typeof(IPAddressConverter)], UseStringEnumConverter = true)]
[JsonSerializable(typeof(ActiveRoute))]
internal sealed partial class JournalJson : JsonSerializerContext;
