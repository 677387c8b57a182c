using System.Globalization;
using System.Net;
using Via.Kernel;
using Via.Kernel.Nftables;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Nft;

/// <summary>The chains of a route's nftables table (pure text), and what via's tables on the host use.</summary>
public static class NftRules
{
    /// <summary>
    /// The chains, given how the program's packets are matched (<paramref name="owner"/>: an nft
    /// expression such as <c>socket cgroupv2 level 2 "unified/via/t23800"</c>):
    /// <list type="bullet">
    /// <item><c>out</c>, a route chain at the output hook (priority mangle): the program's packets
    /// get the route's mark and their connection the same conntrack mark; the kernel routes a packet
    /// again when a route chain changed its mark (ip_route_me_harder), this time by the route's
    /// fwmark rule. The connection's mark is tested first, so its later packets are not matched by
    /// owner again. Packets the kernel sends for a connection from no socket of the program (a RST, a
    /// TIME_WAIT ACK from the per-net control socket) get the mark back from the connection, so they
    /// too never leave by the default route.</item>
    /// <item><c>post</c>, NAT at postrouting (priority srcnat): the source address was chosen when the
    /// socket connected, before the mark, by the default route (DESIGN.md point 1): SNAT to IFACE's
    /// address, only where the kernel picked another (a destination on IFACE's own subnet gets IFACE's
    /// address anyway, and keeps it untouched).</item>
    /// <item><c>pre</c>, prerouting (priority mangle): a reply arriving on IFACE for one of the
    /// route's connections gets the route's mark again, which the reverse-path check uses with
    /// <see cref="SetSourceValidMark"/>: strict rp_filter passes it.</item>
    /// </list>
    /// </summary>
    public static string Body(string owner, uint mark, string device, IPAddress? source4, IPAddress? source6)
    {
        string m = "0x" + mark.ToString("x", CultureInfo.InvariantCulture);
        string dev = Quote(device);
        var s = new System.Text.StringBuilder();
        s.Append("chain out {\n type route hook output priority mangle; policy accept;\n");
        // The connection's mark first: a packet of a connection already marked takes one comparison and
        // leaves the chain; only the rest (a connection's first packet, other programs' packets) is
        // matched by its owner.
        s.Append($" ct mark {m} meta mark set {m} accept\n");
        s.Append($" {owner} meta mark set {m} ct mark set {m}\n}}\n");
        s.Append("chain post {\n type nat hook postrouting priority srcnat; policy accept;\n");
        if (source4 is not null) s.Append($" meta mark {m} oifname {dev} ip saddr != {source4} snat ip to {source4}\n");
        if (source6 is not null) s.Append($" meta mark {m} oifname {dev} ip6 saddr != {source6} snat ip6 to {source6}\n");
        s.Append("}\n");
        s.Append("chain pre {\n type filter hook prerouting priority mangle; policy accept;\n");
        s.Append($" iifname {dev} ct mark {m} meta mark set {m}\n}}");
        return s.ToString();
    }

    /// <summary>
    /// What the route's <c>out</c> chain matches the program's packets by (<see cref="TagRequest.Owner"/>):
    /// the route's cgroup v2 (<see cref="CgroupMatch"/>), or the socket's owner: <c>meta skuid N</c>
    /// or <c>meta skgid N</c>, the fsuid or fsgid of the credentials the socket's file was opened
    /// with (its creator's effective ids then: a socket made as root before dropping privileges stays
    /// root's). Both need a full socket of this network namespace with a file: packets the kernel
    /// sends from a socket of its own (a RST, a TIME_WAIT ACK, ICMP errors, kernel sockets such as
    /// NFS's or WireGuard's) are not matched; a connection's are given the route's mark from its
    /// conntrack mark instead.
    /// </summary>
    public static string OwnerMatch(TagRequest request) => request.Owner.Kind switch
    {
        OwnerKind.Uid => "meta skuid " + request.Owner.Id.ToString(CultureInfo.InvariantCulture),
        OwnerKind.Gid => "meta skgid " + request.Owner.Id.ToString(CultureInfo.InvariantCulture),
        _ => CgroupMatch(request),
    };

    /// <summary>The owner match of the route's cgroup v2 (<c>socket cgroupv2</c>, Linux 5.13): libnftables
    /// turns the path into the cgroup's id when the rule is made, resolving it below
    /// <c>/sys/fs/cgroup</c>, so a hybrid layout's <c>unified/via/tNNN</c> is named relative to it.
    /// The level is the cgroup's depth in the cgroup2 hierarchy (via/tNNN: 2).</summary>
    public static string CgroupMatch(TagRequest request)
    {
        string full = request.Cgroup.TrimEnd('/');
        int level = RouteCgroups.BelowRoot(request.Host, full).Split('/', StringSplitOptions.RemoveEmptyEntries).Length;
        return $"socket cgroupv2 level {level} {Quote(Path.GetRelativePath(CgroupBase, full))}";
    }

    /// <summary>Where libnftables resolves a cgroupv2 path (SYSFS_CGROUPSV2_PATH in nftables' datatype.c).</summary>
    public const string CgroupBase = "/sys/fs/cgroup";

    private static string Quote(string s) => "\"" + s.Replace("\"", "", StringComparison.Ordinal) + "\"";

    /// <summary>Whether a table of via's other than <paramref name="except"/> in this network namespace
    /// re-marks replies arriving on <paramref name="device"/> (an nft or netcls route's <c>pre</c>
    /// chain, which needs <see cref="SetSourceValidMark"/>; a netns route's table names IFACE too, but
    /// needs no such setting).</summary>
    public static bool OtherTablesUsing(string device, string? except)
    {
        foreach (string table in Nftables.Tables(NftTable.Family))
        {
            if (!table.StartsWith(NftTable.Prefix, StringComparison.Ordinal) || table == except) continue;
            try
            {
                if (Nftables.Run($"list table {NftTable.Family} {table}", table).Contains($"iifname {Quote(device)} ct mark ", StringComparison.Ordinal))
                    return true;
            }
            catch (KernelException) { }
        }
        return false;
    }
}
