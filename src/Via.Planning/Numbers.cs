using Via.Mechanisms;

namespace Via.Planning;

/// <summary>The numbers one route uses: its socket mark (under via's mask), routing table and rule priority.</summary>
public sealed record RouteNumbers(uint Mark, uint MarkMask, uint Table, uint Priority);

/// <summary>
/// The space via draws route numbers from. Marks live under <see cref="MarkMask"/> only, so via
/// never matches or sets bits that WireGuard (0xca6c), Docker, kube-proxy (0x4000, 0x8000) or VPN
/// clients use; tables come from a range far from the well-known ones.
/// </summary>
public sealed record NumberSpace(uint FirstTable = 22000, uint Count = 255, uint MarkMask = 0x00ff0000, uint Priority = 12000)
{
    public static readonly NumberSpace Default = new();

    private int Shift => System.Numerics.BitOperations.TrailingZeroCount(MarkMask);

    public RouteNumbers At(uint index) => new((index + 1) << Shift & MarkMask, MarkMask, FirstTable + index, Priority);
}

/// <summary>Picks the first route numbers that nothing on the host (rules, routes, via's own journal) uses.</summary>
public static class Allocator
{
    public static RouteNumbers Allocate(HostView host, IEnumerable<ActiveRoute> active, NumberSpace space)
    {
        var usedTables = host.Routes.Select(r => r.Table).Concat(host.Rules.Select(r => r.Table)).Concat(active.Select(a => a.Table)).ToHashSet();
        var usedMarks = host.Rules.Where(r => r.Mark is not null).Select(r => r.Mark!.Value & space.MarkMask)
            .Concat(active.Select(a => a.Mark & space.MarkMask)).ToHashSet();
        for (uint i = 0; i < space.Count; i++)
        {
            var candidate = space.At(i);
            if (!usedTables.Contains(candidate.Table) && !usedMarks.Contains(candidate.Mark)) return candidate;
        }
        throw new PlanException($"all {space.Count} route numbers of via (tables {space.FirstTable}-{space.FirstTable + space.Count - 1}) are in use; run 'via gc' to remove leftovers");
    }
}
