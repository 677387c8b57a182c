using System.Globalization;

namespace Via.Mechanisms;

/// <summary>What a standing rule (<c>via rule add</c>, a <c>[rule]</c> section of via.conf) picks out: <see cref="RuleSelector"/>.</summary>
public enum SelectorKind
{
    /// <summary>Every socket created by a process of this user (its real uid, as bpf_get_current_uid_gid reads it), whoever started it.</summary>
    User,

    /// <summary>Every socket created by a process whose own (real) group is this one; supplementary groups do not count.</summary>
    Group,

    /// <summary>Every socket created by a process of this name (the kernel's comm: the first 15 bytes of the program's file name).</summary>
    Comm,

    /// <summary>Every connection or datagram of the host to this destination port (tcp or udp).</summary>
    Dport,
}

/// <summary>
/// The selector of a standing rule, as the user wrote it: "user:alice", "group:100", "comm:curl",
/// "dport:tcp:3306". Names are kept as written (resolved to ids when the rule is made); this is the
/// rule's identity in the state directory, in via.conf and on the command line of <c>via rule del</c>.
/// </summary>
public readonly record struct RuleSelector(SelectorKind Kind, string Value)
{
    /// <summary>The kernel's comm is 16 bytes with its terminating zero.</summary>
    public const int CommLength = 15;

    public static string KindName(SelectorKind kind) => kind switch
    {
        SelectorKind.User => "user",
        SelectorKind.Group => "group",
        SelectorKind.Comm => "comm",
        _ => "dport",
    };

    public override string ToString() => KindName(Kind) + ":" + Value;

    /// <summary>A selector of <paramref name="kind"/> ("user", "group", "comm", "dport") with <paramref name="value"/>, or why it is not one.</summary>
    public static RuleSelector? Make(string kind, string value, out string? error)
    {
        error = null;
        SelectorKind? k = kind switch
        {
            "user" => SelectorKind.User,
            "group" => SelectorKind.Group,
            "comm" => SelectorKind.Comm,
            "dport" => SelectorKind.Dport,
            _ => null,
        };
        if (k is not { } known)
        {
            error = $"'{kind}' is not a selector (user, group, comm, dport)";
            return null;
        }
        value = value.Trim();
        switch (known)
        {
            case SelectorKind.User or SelectorKind.Group:
                if (value.Length == 0 || value.Length > 32 || value.Any(c => char.IsWhiteSpace(c) || c == ':' || c == '/' || char.IsControl(c)))
                    error = $"{kind} '{value}' is not a {kind} name or number";
                break;
            case SelectorKind.Comm:
                if (value.Length == 0 || value.Contains('/') || value.Any(char.IsControl))
                    error = $"comm '{value}' is not a program name (the name the kernel shows in /proc/PID/comm, e.g. curl)";
                else if (System.Text.Encoding.UTF8.GetByteCount(value) > CommLength)
                    error = $"comm '{value}' is longer than {CommLength} bytes: the kernel keeps only the first {CommLength} bytes of a program's name; give those";
                break;
            default:
                if (DestinationPort.Parse(value, out string? why) is { } port) value = port.ToString();
                else error = why;
                break;
        }
        return error is null ? new RuleSelector(known, value) : null;
    }

    /// <summary>"user:alice" (as <see cref="ToString"/> writes it), or why not.</summary>
    public static RuleSelector? Parse(string text, out string? error)
    {
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
        {
            error = $"'{text}' is not a selector: write KIND:VALUE (user:alice, group:staff, comm:curl, dport:tcp:3306)";
            return null;
        }
        return Make(text[..colon], text[(colon + 1)..], out error);
    }
}

/// <summary>A transport protocol and a destination port or range: "tcp:3306", "udp:53", "tcp:8000-8080".</summary>
public readonly record struct DestinationPort(string Protocol, ushort First, ushort Last)
{
    /// <summary>IPPROTO_TCP or IPPROTO_UDP.</summary>
    public byte ProtocolNumber => Protocol == "tcp" ? (byte)6 : (byte)17;

    public override string ToString() => First == Last
        ? $"{Protocol}:{First.ToString(CultureInfo.InvariantCulture)}"
        : $"{Protocol}:{First.ToString(CultureInfo.InvariantCulture)}-{Last.ToString(CultureInfo.InvariantCulture)}";

    public static DestinationPort? Parse(string text, out string? error)
    {
        error = null;
        var parts = text.Split(':', 2);
        string proto = parts[0].ToLowerInvariant();
        if (parts.Length != 2 || proto is not ("tcp" or "udp"))
        {
            error = $"'{text}' is not PROTO:PORT with PROTO tcp or udp (e.g. tcp:3306, udp:53, tcp:8000-8080)";
            return null;
        }
        var range = parts[1].Split('-', 2);
        static ushort? Port(string s) => ushort.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out ushort p) && p > 0 ? p : null;
        if (Port(range[0]) is not { } first || (range.Length == 2 ? Port(range[1]) : first) is not { } last || last < first)
        {
            error = $"'{parts[1]}' in '{text}' is not a port 1-65535 or a range FIRST-LAST";
            return null;
        }
        return new DestinationPort(proto, first, last);
    }
}
