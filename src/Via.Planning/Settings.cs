using System.Globalization;
using Via.Mechanisms;

namespace Via.Planning;

/// <summary>
/// via's configuration (/etc/via/via.conf, or the file VIA_CONFIG names): where route numbers come from.
/// Mark mask and priority are chosen for the host (<see cref="NumberChoice"/>) unless set here.
/// <code>
/// # bits of the socket mark via may use; others' marks must stay outside them (default: chosen)
/// mark-mask = 0x00ff0000
/// # routing tables via may use
/// tables = 22000-22254
/// # priority of via's rules (after the local table at 0, before main at 32766; default: chosen)
/// priority = 12000
/// </code>
/// </summary>
public sealed record Settings(uint FirstTable, uint Count, uint? MarkMask, uint? Priority, string Source)
{
    public const string DefaultPath = "/etc/via/via.conf";

    public static readonly Settings Default = new(NumberSpace.Default.FirstTable, NumberSpace.Default.Count, null, null, DefaultPath);

    /// <summary>Parses the file's settings (see <see cref="ViaConfig.Parse"/>: the whole file is checked); a malformed line is a <see cref="PlanException"/> naming the file and line.</summary>
    public static Settings Parse(string text, string source) => ViaConfig.Parse(text, source).Settings;

    /// <summary>One flat setting (before the first section) into <paramref name="settings"/>; null if the key is none of them.</summary>
    internal static Settings? Set(Settings settings, string key, string value, Func<string, PlanException> bad)
    {
        switch (key)
        {
            case "mark-mask":
                uint mask = Number(value) ?? throw bad($"mark-mask '{value}' is not a number (e.g. 0x00ff0000)");
                if (mask == 0) throw bad("mark-mask is 0: via needs at least one bit of the socket mark");
                uint low = mask >> System.Numerics.BitOperations.TrailingZeroCount(mask);
                if ((low & (low + 1)) != 0) throw bad($"mark-mask 0x{mask:x8} is not one run of contiguous bits (e.g. 0x00ff0000)");
                return settings with { MarkMask = mask };
            case "tables":
                var parts = value.Split('-', 2, StringSplitOptions.TrimEntries);
                if (parts.Length != 2 || Number(parts[0]) is not { } a || Number(parts[1]) is not { } b || a > b)
                    throw bad($"tables '{value}' is not a range FIRST-LAST with FIRST <= LAST (e.g. 22000-22254)");
                if (a == 0 || (a <= 255 && b >= 253))
                    throw bad($"tables {value} includes a table the kernel reserves (0, 253 default, 254 main, 255 local)");
                return settings with { FirstTable = a, Count = b - a + 1 };
            case "priority":
                uint priority = Number(value) ?? throw bad($"priority '{value}' is not a number");
                if (priority is 0 or >= 32766) throw bad($"priority {priority} must be between 1 and 32765 (after the local table, before main)");
                return settings with { Priority = priority };
            default:
                return null;
        }
    }

    internal const string Known = "mark-mask, tables, priority";

    internal static uint? Number(string s) =>
        s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? uint.TryParse(s.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint h) ? h : null
            : uint.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out uint d) ? d : null;

    /// <summary>Reads the configuration file if there is one (VIA_CONFIG names another): its settings (the whole file is checked).</summary>
    public static Settings Load() => ViaConfig.Load().Settings;
}
