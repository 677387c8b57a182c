using Via.Planning;

namespace Via.Tests.Unit;

/// <summary>via.conf: what a valid file sets, and that each bad line is refused naming the file and the line.</summary>
[Collection(ProcessEnvironment.Name)] // Load reads VIA_CONFIG
public sealed class SettingsTests
{
    private const string File = "/etc/via/via.conf";

    [Fact]
    public void An_empty_file_or_only_comments_is_the_default()
    {
        foreach (var text in new[] { "", "\n\n", "# nothing here\n   # indented comment\n\t\n" })
        {
            var s = Settings.Parse(text, File);
            Assert.Equal(Settings.Default.FirstTable, s.FirstTable);
            Assert.Equal(Settings.Default.Count, s.Count);
            Assert.Null(s.MarkMask);
            Assert.Null(s.Priority);
            Assert.Equal(File, s.Source);
        }
    }

    [Fact]
    public void Every_setting_is_read_in_hex_or_decimal_with_comments_and_spaces()
    {
        var s = Settings.Parse("""
            # via's numbers
            mark-mask = 0x0000FF00    # hex, either case
              tables=31000 - 31010
            priority =9000
            """, File);
        Assert.Equal(0x0000ff00u, s.MarkMask);
        Assert.Equal(31000u, s.FirstTable);
        Assert.Equal(11u, s.Count);
        Assert.Equal(9000u, s.Priority);
    }

    [Theory]
    [InlineData("tables = 22000-22000", 22000u, 1u)] // one table
    [InlineData("tables = 256-300", 256u, 45u)]       // just above the reserved ones
    [InlineData("tables = 1-252", 1u, 252u)]          // just below them
    [InlineData("tables = 0x5000-0x5001", 0x5000u, 2u)]
    public void A_table_range_away_from_the_reserved_tables_is_taken(string line, uint first, uint count)
    {
        var s = Settings.Parse(line, File);
        Assert.Equal(first, s.FirstTable);
        Assert.Equal(count, s.Count);
    }

    [Fact]
    public void The_last_of_a_repeated_setting_wins()
    {
        Assert.Equal(7u, Settings.Parse("priority = 5\npriority = 7\n", File).Priority);
    }

    [Theory]
    [InlineData("colour = blue", 1, "unknown setting 'colour' (known: mark-mask, tables, priority)")]
    [InlineData("tables 22000-22010", 1, "expected 'key = value', got 'tables 22000-22010'")]
    [InlineData("mark-mask = banana", 1, "mark-mask 'banana' is not a number")]
    [InlineData("mark-mask = 0", 1, "mark-mask is 0")]
    [InlineData("mark-mask = 0x00f0f000", 1, "mark-mask 0x00f0f000 is not one run of contiguous bits")]
    [InlineData("mark-mask = 0xg", 1, "mark-mask '0xg' is not a number")]
    [InlineData("mark-mask = -1", 1, "mark-mask '-1' is not a number")]
    [InlineData("tables = 3000-2000", 1, "tables '3000-2000' is not a range FIRST-LAST with FIRST <= LAST")]
    [InlineData("tables = 3000", 1, "tables '3000' is not a range")]
    [InlineData("tables = a-b", 1, "tables 'a-b' is not a range")]
    [InlineData("tables = 0-10", 1, "tables 0-10 includes a table the kernel reserves")]
    [InlineData("tables = 200-300", 1, "tables 200-300 includes a table the kernel reserves")]
    [InlineData("tables = 255-255", 1, "tables 255-255 includes a table the kernel reserves")]
    [InlineData("priority = 0", 1, "priority 0 must be between 1 and 32765")]
    [InlineData("priority = 32766", 1, "priority 32766 must be between 1 and 32765")]
    [InlineData("priority = high", 1, "priority 'high' is not a number")]
    [InlineData("# a comment\n\npriority = 40000", 3, "priority 40000 must be between 1 and 32765")]
    [InlineData("tables = 22000-22010\nmark-mask = 0xff\ncolour = blue\n", 3, "unknown setting 'colour'")]
    public void A_bad_line_is_refused_with_the_file_and_line(string text, int line, string message)
    {
        var e = Assert.Throws<PlanException>(() => Settings.Parse(text, File));
        Assert.StartsWith($"{File}:{line}: ", e.Message);
        Assert.Contains(message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_missing_file_is_the_default_named_by_its_path()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"via-settings-{Guid.NewGuid():N}.conf");
        var previous = Environment.GetEnvironmentVariable("VIA_CONFIG");
        Environment.SetEnvironmentVariable("VIA_CONFIG", missing);
        try
        {
            var s = Settings.Load();
            Assert.Equal(Settings.Default with { Source = missing }, s);
        }
        finally
        {
            Environment.SetEnvironmentVariable("VIA_CONFIG", previous);
        }
    }

    [Fact]
    public void A_file_is_read_from_where_VIA_CONFIG_says()
    {
        string file = Path.Combine(Path.GetTempPath(), $"via-settings-{Guid.NewGuid():N}.conf");
        System.IO.File.WriteAllText(file, "tables = 31000-31009\n");
        var previous = Environment.GetEnvironmentVariable("VIA_CONFIG");
        Environment.SetEnvironmentVariable("VIA_CONFIG", file);
        try
        {
            var s = Settings.Load();
            Assert.Equal((31000u, 10u, file), (s.FirstTable, s.Count, s.Source));
            System.IO.File.WriteAllText(file, "tables = 31000\n");
            Assert.StartsWith($"{file}:1: tables '31000'", Assert.Throws<PlanException>(() => Settings.Load()).Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable("VIA_CONFIG", previous);
            System.IO.File.Delete(file);
        }
    }
}
