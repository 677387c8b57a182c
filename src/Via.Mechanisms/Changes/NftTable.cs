using System.Text.Json;
using Via.Kernel.Nftables;

namespace Via.Mechanisms.Changes;

/// <summary>
/// One nftables table of via's own for one route (<c>table inet via_ROUTE</c>: the route's name is
/// via's tag, DESIGN.md point 9), made whole in one libnftables transaction and deleted whole; the
/// nft, netcls and netns mechanisms each make one. Its text is nft's own syntax: libnftables 1.0.6's
/// JSON schema has no <c>socket cgroupv2</c> key, its text parser does. <c>via gc</c> deletes
/// <c>inet via_t*</c> tables of routes no journal knows (<see cref="Sweep"/>), never another table.
/// </summary>
public sealed record NftTable(string Name, string Body) : HostChange
{
    /// <summary>The prefix of every table via makes.</summary>
    public const string Prefix = "via_";

    public const string Family = "inet";

    public static readonly ChangeCodec Codec = new("nft-table", c => new NftTable(JsonFields.Need(c, "name"), JsonFields.Need(c, "body")));

    /// <summary>The table of route <paramref name="routeId"/>: <c>via_t23800</c> for route t23800.</summary>
    public static string Of(string routeId) => Prefix + routeId;

    public override string Kind => Codec.Kind;

    public override string Command => $"nft -f - <<< 'table {Family} {Name} {{ {Body.ReplaceLineEndings(" ")} }}'";

    public override string UndoCommand => $"nft delete table {Family} {Name}";

    public override void Write(Utf8JsonWriter w)
    {
        w.WriteString("name", Name);
        w.WriteString("body", Body);
    }

    // 'add' then 'delete' first, in the same transaction: a table of that name left by a crash is
    // replaced, not merged into.
    public override void Apply(Host host) =>
        host.InNetwork(() => Nftables.Run($"add table {Family} {Name}\ndelete table {Family} {Name}\ntable {Family} {Name} {{\n{Body}\n}}\n", $"table {Family} {Name}"));

    public override bool Undo(Host host) => host.InNetwork(() => Delete(Name));

    /// <summary>Deletes the table if it is there (one nfnetlink transaction, 'add' first: never an
    /// error if another via, gc or the reaper, removed it meanwhile); true if it was there. Over
    /// nfnetlink itself, so that gc and undo need no libnftables.</summary>
    public static bool Delete(string name)
    {
        bool was = NftablesTables.Names(NftBatch.Inet)?.Contains(name) ?? true;
        new NftBatch().AddTable(name).DeleteTable(name).Commit($"nft delete table {Family} {name}");
        return was;
    }

    /// <summary>
    /// via's tables (<c>inet via_t*</c>) of this network namespace whose route no journal knows (a
    /// crash between the journal's removal and the table's, a wiped state directory): deleted. Only
    /// where the journals account for every route (<see cref="Journal.OwnsCgroupSubtree"/>): a table
    /// of a route of another state directory is not this one's to judge.
    /// </summary>
    public static IEnumerable<Collector.Removal> Sweep(IReadOnlyList<ActiveRoute> known, bool dryRun)
    {
        if (!Journal.OwnsCgroupSubtree || NftablesTables.Names(NftBatch.Inet) is not { } tables) yield break;
        var ids = known.Select(r => Of(r.Id)).ToHashSet(StringComparer.Ordinal);
        foreach (string table in tables)
        {
            if (!table.StartsWith(Prefix + "t", StringComparison.Ordinal) || ids.Contains(table)) continue;
            var failures = new List<string>();
            if (!dryRun)
            {
                try { Delete(table); }
                catch (Kernel.KernelException e) { failures.Add(e.Message); }
            }
            yield return new Collector.Removal($"nftables table {Family} {table}", "no journal", failures);
        }
    }
}
