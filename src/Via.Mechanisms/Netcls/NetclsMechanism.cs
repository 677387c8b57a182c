using System.Globalization;
using Via.Kernel.Cgroups;
using Via.Kernel.Nftables;
using Via.Mechanisms.Changes;
using Via.Mechanisms.Nft;

namespace Via.Mechanisms.Netcls;

/// <summary>
/// The program also joins a cgroup v1 net_cls cgroup of the route's (<c>NET_CLS/via/tNNN</c>) whose
/// classid nftables matches (<c>meta cgroup</c>) in the route's table; the rest is the nft
/// mechanism's: the reroute, SNAT where the kernel picked another address, replies re-marked for
/// strict rp_filter (<see cref="NftRules.Body"/>). For hosts whose nftables cannot match a cgroup v2
/// (<c>socket cgroupv2</c> needs Linux 5.13 and nftables 1.0).
/// <para>
/// The conflict with cgroup v2: before Linux 5.15 a socket's cgroup data was one union, either its
/// cgroup v2 or its net_cls classid and net_prio index. The first classid written anywhere makes the
/// kernel stop recording cgroup v2 on new sockets, host-wide and until reboot ("cgroup: disabling
/// cgroup2 socket matching due to net_prio or net_cls activation"): every cgroup eBPF program on
/// sockets (via's socket mark and egress guard, systemd's IPAddressDeny= and
/// RestrictNetworkInterfaces=) and every nftables <c>socket cgroupv2</c> match then sees the root
/// cgroup, silently. Linux 5.15 keeps both (commit 8520e224f547, "bpf, cgroups: Fix cgroup v2
/// fallback on v1/v2 mixed mode"). via avoids it by refusing this method on kernels before 5.15, so
/// it never writes a classid where that would blind its own guard and everybody's cgroup v2 matches.
/// </para>
/// </summary>
public sealed class NetclsMechanism : IMechanism
{
    /// <summary>Where via mounts the net_cls hierarchy when none is mounted: in its state directory (/run/via/net_cls), as its private cgroup2.</summary>
    public static string PrivateMount => Path.Combine(Journal.StateDirectory, "net_cls");

    /// <summary>The high half of every classid via writes ("V" in the major number): via's tag on them.</summary>
    public const uint ClassidMajor = 0x5600;

    public string Name => "netcls";

    public string Summary => "the program joins a net_cls cgroup (cgroup v1) whose classid nftables matches (meta cgroup), then as nft: reroute, SNAT";

    public bool TagsAtCreation => false;

    public MechanismProbe Probe(HostView host)
    {
        if (!NetCls.Known()) return new(false, "this kernel has no net_cls controller (CONFIG_CGROUP_NET_CLASSID)");
        if (!Nftables.Available) return new(false, "libnftables.so.1 is not installed (Debian: apt install libnftables1)");
        if (!NftMechanism.KernelAtLeast(5, 15))
            return new(false, "before Linux 5.15 a net_cls classid disables cgroup v2 socket matching host-wide (via's egress guard among them)");
        return new(true, Mount() is { } m ? $"net_cls at {m}; nftables meta cgroup, SNAT to IFACE's address" : $"net_cls not mounted; via mounts it at {PrivateMount}");
    }

    private static string? Mount() => NetCls.FindMounts().FirstOrDefault();

    /// <summary>A net_cls mount of this mount namespace; with <paramref name="mount"/>, via's private one is made where there is none.</summary>
    internal static string VisibleRoot(bool mount)
    {
        if (Mount() is { } m) return m;
        if (mount) NetCls.Mount(PrivateMount);
        return PrivateMount;
    }

    /// <summary>The route's classid: major 0x5600 (via's), minor from the route's table.</summary>
    public static uint ClassidOf(string routeId) =>
        (ClassidMajor << 16) | (uint.TryParse(routeId.TrimStart('t'), NumberStyles.None, CultureInfo.InvariantCulture, out uint n) ? n & 0xffff : 0);

    private static string CgroupOf(string routeId) => Path.Combine(Mount() ?? PrivateMount, RouteCgroups.Subtree, routeId);

    public IReadOnlyList<HostChange> Tag(TagRequest request)
    {
        uint classid = ClassidOf(request.RouteId);
        var changes = new List<HostChange>();
        if (Mount() is null) changes.Add(new MountNetCls(PrivateMount));
        changes.Add(new CreateNetClsCgroup(CgroupOf(request.RouteId), classid));
        changes.AddRange(NftMechanism.Changes(request, $"meta cgroup 0x{classid:x}"));
        return changes;
    }

    public LaunchAdditions Launch(TagRequest request) => new(new Dictionary<string, string>(), JoinCgroups: [CgroupOf(request.RouteId)]);

    /// <summary>via's net_cls cgroups of routes no journal knows, once empty (the tables: <see cref="NftTable.Sweep"/>).</summary>
    public IEnumerable<Collector.Removal> Sweep(IReadOnlyList<ActiveRoute> known, bool dryRun)
    {
        // Only where the journals account for every route (net_cls is host-wide; see Journal.OwnsCgroupSubtree).
        if (!Journal.OwnsCgroupSubtree) yield break;
        var ids = known.Select(r => r.Id).ToHashSet(StringComparer.Ordinal);
        // The hierarchy outlives every mount of it (its cgroups keep it): look through one of this
        // namespace's, mounting via's own only where a net_cls hierarchy exists at all.
        if (!NetCls.Bound()) yield break;
        if (!dryRun && NetCls.FindMounts().Count == 0) VisibleRoot(mount: true);
        foreach (string mount in NetCls.FindMounts().Take(1))
        {
            string subtree = Path.Combine(mount, RouteCgroups.Subtree);
            if (!Directory.Exists(subtree)) continue;
            foreach (string dir in Directory.EnumerateDirectories(subtree))
            {
                if (ids.Contains(Path.GetFileName(dir))) continue;
                var failures = new List<string>();
                if (!dryRun)
                {
                    try { new CreateNetClsCgroup(dir, 0).Undo(new Host()); }
                    catch (Kernel.KernelException e) when (e.ErrorCode == Kernel.Errno.EBUSY) { continue; } // processes still in it: a route being made, or not via's to end
                    catch (Kernel.KernelException e) { failures.Add(e.Message); }
                }
                yield return new Collector.Removal($"net_cls cgroup {dir}", "no journal", failures);
            }
        }
    }

    public IReadOnlyList<ChangeCodec> ChangeKinds => [MountNetCls.Codec, CreateNetClsCgroup.Codec];
}
