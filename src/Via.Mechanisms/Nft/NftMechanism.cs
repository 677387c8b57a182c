using Via.Kernel.Nftables;
using Via.Mechanisms.Changes;

namespace Via.Mechanisms.Nft;

/// <summary>
/// nftables marks the program's packets by their owner: the route's cgroup v2 (<c>socket cgroupv2</c>),
/// or for a route whose <see cref="RouteOwner"/> is a uid or gid every socket of it (<c>meta skuid</c>,
/// <c>meta skgid</c>; <see cref="NftRules.OwnerMatch"/>), in a table of via's own, which also routes them again, SNATs them to IFACE's address where the
/// kernel picked another, and marks the replies for strict rp_filter (<see cref="NftRules.Body"/>).
/// The mark comes after routing, so the source address is the default route's until SNAT
/// (DESIGN.md point 1): <see cref="TagsAtCreation"/> is false.
/// </summary>
public sealed class NftMechanism : IMechanism
{
    public string Name => "nft";

    public string Summary => "nftables marks the route's cgroup's packets at output (socket cgroupv2), routes them again and SNATs them to IFACE's address";

    public bool TagsAtCreation => false;

    public bool MatchesOwners => true;

    public MechanismProbe Probe(HostView host)
    {
        if (!Nftables.Available) return new(false, "libnftables.so.1 is not installed (Debian: apt install libnftables1)");
        if (!KernelAtLeast(5, 13)) return new(false, "needs Linux 5.13 for nftables' socket cgroupv2 match");
        if (!Directory.Exists(NftRules.CgroupBase)) return new(false, $"{NftRules.CgroupBase} is not visible here (libnftables names cgroups below it)");
        return new(true, "libnftables; socket cgroupv2 match on the route's cgroup, SNAT to IFACE's address");
    }

    internal static bool KernelAtLeast(int major, int minor)
    {
        string release = Environment.OSVersion.Version.ToString();
        try { release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim(); }
        catch (IOException) { }
        var parts = release.Split('.', '-');
        return parts.Length >= 2 && int.TryParse(parts[0], out int a) && int.TryParse(parts[1], out int b) && (a > major || (a == major && b >= minor));
    }

    public IReadOnlyList<HostChange> Tag(TagRequest request) => Changes(request, NftRules.OwnerMatch(request));

    /// <summary>The table, and where needed the per-interface setting replies need (shared with net_cls).</summary>
    internal static IReadOnlyList<HostChange> Changes(TagRequest request, string owner)
    {
        var changes = new List<HostChange>();
        // Not where it is 1 already and no via table made it so (the administrator's: leave it).
        if (request.Source4 is not null && (SetSourceValidMark.Read(request.Device) != "1" || NftRules.OtherTablesUsing(request.Device, null)))
            changes.Add(new SetSourceValidMark(request.Device));
        changes.Add(new NftTable(NftTable.Of(request.RouteId),
            NftRules.Body(owner, request.Mark, request.Device, request.Source4, request.Source6)));
        return changes;
    }

    public LaunchAdditions Launch(TagRequest request) => LaunchAdditions.None;

    // Its tables are swept by the collector, as every via table (NftTable.Sweep).
    public IReadOnlyList<ChangeCodec> ChangeKinds => [SetSourceValidMark.Codec];
}
