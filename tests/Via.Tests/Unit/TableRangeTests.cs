using System.Globalization;
using Via.Tests.Kernel;

namespace Via.Tests.Unit;

/// <summary>The test classes' routing-table ranges (ClassState.Tables and the contract rows' 50 each) never overlap.</summary>
public sealed class TableRangeTests
{
    [Fact]
    public void No_two_test_classes_share_a_table()
    {
        var ranges = ClassState.Tables.Select(kv =>
        {
            var p = kv.Value.Split('-');
            return (Name: kv.Key, First: uint.Parse(p[0], CultureInfo.InvariantCulture), Last: uint.Parse(p[1], CultureInfo.InvariantCulture));
        }).ToList();
        foreach (var (name, first) in new[] { ("SeccompContract", 23350u), ("PreloadContract", 23450u), ("CgroupContract", 23500u), ("NetnsContract", 23750u), ("NftContract", 23800u), ("NetclsContract", 23850u) })
            ranges.Add((name, first, first + 49));
        foreach (var a in ranges)
            foreach (var b in ranges.Where(b => string.CompareOrdinal(a.Name, b.Name) < 0))
                Assert.False(a.First <= b.Last && b.First <= a.Last, $"{a.Name} ({a.First}-{a.Last}) and {b.Name} ({b.First}-{b.Last}) share tables");
    }
}
