using Via.Mechanisms;

namespace Via.Planning;

/// <summary>The numbers one route uses: its socket mark (under via's mask), routing table and rule priority.</summary>
public sealed record RouteNumbers(uint Mark, uint MarkMask, uint Table, uint Priority);

/// <summary>
/// The space via draws route numbers from. Marks live under <see cref="MarkMask"/> only, a mask
/// chosen for the host (<see cref="NumberChoice"/>) so that via never matches or sets bits that
/// WireGuard, Tailscale, kube-proxy or VPN clients use; tables come from a range far from the
/// well-known ones. <see cref="Default"/> is the space before any choice (tests, plan printing).
/// </summary>
public sealed record NumberSpace(uint FirstTable = 22000, uint Count = 255, uint MarkMask = 0x00ff0000, uint Priority = 12000)
{
    public static readonly NumberSpace Default = new();

    private int Shift => System.Numerics.BitOperations.TrailingZeroCount(MarkMask);

    /// <summary>How many distinct non-zero marks fit under the mask: the space never hands out mark 0,
    /// whose rule (fwmark 0/MASK) would match every unmarked socket on the host.</summary>
    public uint Capacity => MarkMask == 0 ? 0 : (MarkMask >> Shift);

    /// <summary>Routes this space can hold: one table and one non-zero mark each.</summary>
    public uint Size => Math.Min(Count, Capacity);

    public RouteNumbers At(uint index) => new((index + 1) << Shift & MarkMask, MarkMask, FirstTable + index, Priority);
}

/// <summary>Picks the first route numbers that nothing on the host (rules, routes, via's own journal) uses.</summary>
public static class Allocator
{
    public static RouteNumbers Allocate(HostView host, IEnumerable<ActiveRoute> active, NumberSpace space, uint? table = null)
    {
        if (table is { } wanted) return AllocateWithTable(host, active.ToList(), space, wanted);
        var usedTables = host.Routes.Select(r => r.Table).Concat(host.Rules.Select(r => r.Table)).Concat(active.Select(a => a.Table))
            .Concat(CgroupTables(host)).ToHashSet();
        var usedMarks = host.Rules.Where(r => r.Mark is not null).Select(r => r.Mark!.Value & space.MarkMask)
            .Concat(active.Select(a => a.Mark & space.MarkMask))
            // An exact mark a common program puts on its packets (wg-quick's 0xca6c, Mullvad's 0x6d6f6c65)
            // must not equal via's mark under the mask, or via's rule would take that program's packets.
            .Concat(KnownProgram.All.Where(p => p.Exact is not null).Select(p => p.Exact!.Value & space.MarkMask))
            .Concat((host.FirewallMarks ?? []).Where(f => f.Exact is not null).Select(f => f.Exact!.Value & space.MarkMask)).ToHashSet();
        for (uint i = 0; i < space.Size; i++)
        {
            var candidate = space.At(i);
            if (!usedTables.Contains(candidate.Table) && !usedMarks.Contains(candidate.Mark)) return candidate;
        }
        throw new PlanException($"all {space.Count} route numbers of via (tables {space.FirstTable}-{space.FirstTable + space.Count - 1}) are in use; run 'via gc' to remove leftovers");
    }

    /// <summary>Tables whose route cgroup (t{table}) exists: the route id, and so the cgroup's name, is taken.</summary>
    private static IEnumerable<uint> CgroupTables(HostView host) =>
        (host.RouteCgroups ?? []).Select(n => n.StartsWith('t') && uint.TryParse(n.AsSpan(1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint t) ? t : 0).Where(t => t != 0);

    /// <summary>--table N: that table, if nothing but via's own routes use it; a mark as usual.</summary>
    private static RouteNumbers AllocateWithTable(HostView host, List<ActiveRoute> active, NumberSpace space, uint table)
    {
        if (table is 0 or >= 253 and <= 255)
            throw new PlanException($"table {table} is reserved by the kernel (0 unspec, 253 default, 254 main, 255 local); pass another --table");
        if (active.FirstOrDefault(a => a.Table == table) is { } other)
            throw new PlanException($"table {table} is used by via's route {other.Id} (dev {other.Device}, gateway {other.Gateway ?? "none"}), which is a different route; pass another --table or leave --table out");
        var users = host.Routes.Where(r => r.Table == table).Select(r => "routes").Concat(host.Rules.Where(r => r.Table == table).Select(r => $"rule pref {r.Priority}"))
            .Concat(CgroupTables(host).Where(t => t == table).Select(t => $"via's cgroup t{t} of a route in another network namespace or state directory")).Distinct().ToList();
        if (users.Count > 0)
            throw new PlanException($"table {table} is already in use on this host ({string.Join(", ", users)}); pass another --table or leave --table out");
        var free = Allocate(host, active, space);
        return free with { Table = table };
    }
}
