using System.Text.Json;
using Via.Kernel;
using Via.Kernel.Nftables;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Nft;

/// <summary>
/// One nftables table of via's own (<c>inet via_tNNN</c>, the route's name: via's tag, DESIGN.md
/// point 9), made whole in one libnftables transaction and deleted whole. Its text is nft's own
/// syntax: libnftables 1.0.6's JSON schema has no <c>socket cgroupv2</c> key, its text parser does.
/// </summary>
public sealed record AddNftTable(string Name, string Body) : HostChange
{
    /// <summary>The prefix of every table via makes; <c>via gc</c> sweeps <c>inet via_t*</c> no journal accounts for.</summary>
    public const string Prefix = "via_";

    public const string Family = "inet";

    public override string Command => $"nft -f - <<< 'table {Family} {Name} {{ {Body.ReplaceLineEndings(" ")} }}'";
    public override string UndoCommand => $"nft delete table {Family} {Name}";

    public static readonly ChangeCodec Codec = new("nft-table", c => new AddNftTable(JsonFields.Need(c, "name"), JsonFields.Need(c, "body")));

    public override string Kind => Codec.Kind;

    public override void Write(Utf8JsonWriter w)
    {
        w.WriteString("name", Name);
        w.WriteString("body", Body);
    }

    public override void Apply(Host host) =>
        host.InNetwork(() => NftablesCommands.Run($"table {Family} {Name} {{\n{Body}\n}}\n", $"table {Family} {Name}"));

    public override bool Undo(Host host) => host.InNetwork(() => Delete(Name));

    /// <summary>Deletes the table if it is there; true if it was.</summary>
    public static bool Delete(string name)
    {
        if (!NftablesCommands.Tables(Family).Contains(name)) return false;
        try
        {
            NftablesCommands.Run($"delete table {Family} {name}", $"table {Family} {name}");
            return true;
        }
        catch (KernelException) when (!NftablesCommands.Tables(Family).Contains(name))
        {
            return false; // removed meanwhile by another via (gc, the reaper)
        }
    }
}
