using System.Text.Json;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Nft;

/// <summary>
/// <c>net.ipv4.conf.IFACE.src_valid_mark=1</c>: the reverse-path check of a packet arriving on IFACE
/// then looks its source up with the packet's mark. A reply to a SNATed connection is translated
/// back to the address the kernel first chose (another interface's) before routing, so the
/// route's <c>from IFACE-address</c> rule no longer applies to it and strict rp_filter would drop
/// it; via's prerouting chain gives it the route's mark again (from its conntrack mark), and with
/// this setting the check follows the route's fwmark rule to IFACE. Per interface, not host-wide
/// (DESIGN.md point 2): only packets that arrive on IFACE with a mark are looked up differently,
/// and an unmarked packet exactly as before. Undone when no other via table uses IFACE.
/// </summary>
public sealed record SetSourceValidMark(string Device) : HostChange
{
    public override string Command => $"sysctl -w net.ipv4.conf.{Device}.src_valid_mark=1";
    public override string UndoCommand => $"sysctl -w net.ipv4.conf.{Device}.src_valid_mark=0";

    public static readonly ChangeCodec Codec = new("src-valid-mark", c => new SetSourceValidMark(JsonFields.Need(c, "device")));

    public override string Kind => Codec.Kind;

    public override void Write(Utf8JsonWriter w) => w.WriteString("device", Device);

    private string File => $"/proc/sys/net/ipv4/conf/{Device}/src_valid_mark";

    public override void Apply(Host host) => host.InNetwork(() =>
    {
        try { System.IO.File.WriteAllText(File, "1"); }
        catch (IOException e) { throw new IOException($"cannot set {File}: {e.Message}", e); }
        return 0;
    });

    public override bool Undo(Host host) => host.InNetwork(() =>
    {
        // Another route of via's on IFACE still needs it; IFACE gone: nothing to restore.
        if (NftRules.OtherTablesUsing(Device, null) || !System.IO.File.Exists(File) || Read(Device) != "1") return false;
        try { System.IO.File.WriteAllText(File, "0"); return true; }
        catch (IOException) { return false; } // IFACE removed meanwhile
    });

    /// <summary>The current value in this network namespace, or null (no such interface).</summary>
    public static string? Read(string device)
    {
        try { return System.IO.File.ReadAllText($"/proc/sys/net/ipv4/conf/{device}/src_valid_mark").Trim(); }
        catch (IOException) { return null; }
    }
}
