using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Via.Kernel.Netlink;

namespace Via.Mechanisms;

/// <summary>
/// One <c>--only</c> SPEC: the destinations of a program that take its route. A network
/// ("10.20.0.0/16", "2001:db8::/32", a bare address: /32 or /128), a transport port
/// ("tcp:3306", "udp:53", "tcp:8000-8080"), or both, joined by '@' ("10.20.0.0/16@tcp:3306";
/// '@' and not ':' because IPv6 addresses are full of colons). A destination matches when it is in
/// the network (if given) and, if a port is given, the packet is of that protocol to a port in the range.
/// </summary>
/// <param name="Network">The network's first address (host bits zero), or null for any destination of both families.</param>
/// <param name="PrefixLength">The network's prefix length (0-32, 0-128).</param>
/// <param name="Port">The protocol and port range, or null for any.</param>
public sealed record DestinationFilter(IPAddress? Network, byte PrefixLength, DestinationPort? Port)
{
    /// <summary>Whether the filter can match a packet of <paramref name="family"/>: a network only of its own family.</summary>
    public bool Covers(AddressFamily family) => Network is null || Network.AddressFamily == family;

    /// <summary>The port range as a rule's 'dport' takes it.</summary>
    public PortRange? Ports => Port is { } p ? new PortRange(p.First, p.Last) : null;

    /// <summary>"10.20.0.0/16@tcp:3306", "tcp:3306", "2001:db8::/32": what <see cref="Parse"/> reads back.</summary>
    public override string ToString() =>
        (Network is null ? "" : $"{Network}/{PrefixLength.ToString(CultureInfo.InvariantCulture)}")
        + (Network is not null && Port is not null ? "@" : "")
        + (Port?.ToString() ?? "");

    /// <summary>One SPEC, or null and why not (naming it, with the forms it may take).</summary>
    public static DestinationFilter? Parse(string text, out string? error)
    {
        error = null;
        string spec = text.Trim();
        string? network = spec, port = null;
        int at = spec.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0) (network, port) = (spec[..at], spec[(at + 1)..]);
        else if (spec.StartsWith("tcp:", StringComparison.OrdinalIgnoreCase) || spec.StartsWith("udp:", StringComparison.OrdinalIgnoreCase)) (network, port) = (null, spec);

        DestinationPort? destinationPort = null;
        if (port is not null)
        {
            destinationPort = DestinationPort.Parse(port, out string? why);
            if (destinationPort is null) return Fail($"'{text}': {why}", out error);
            // fib_rule_port_range_valid: the kernel's rules take ports up to 65534.
            if (destinationPort.Value.Last > PortRange.MaxLast)
                return Fail($"'{text}': port 65535 cannot be selected by a routing rule (the kernel's port ranges end at {PortRange.MaxLast})", out error);
        }
        if (network is null) return new DestinationFilter(null, 0, destinationPort);

        string[] parts = network.Split('/', 2);
        bool plausible = parts[0].Contains(':') || parts[0].Split('.').Length == 4;
        if (parts[0].Length == 0 || !plausible || parts[0].Contains('%') || !IPAddress.TryParse(parts[0], out var address))
        {
            // "sctp:80": a port of a protocol --only does not take, rather than a broken address.
            int colon = network.IndexOf(':', StringComparison.Ordinal);
            if (at < 0 && colon > 0 && network[..colon].All(char.IsAsciiLetter) && DestinationPort.Parse(network, out string? why) is null)
                return Fail($"'{text}': {why}", out error);
            return Fail($"'{text}' is not a destination: give a network (10.20.0.0/16, 2001:db8::/32, an address), PROTO:PORT (tcp:3306, udp:53, tcp:8000-8080), or both as NETWORK@PROTO:PORT", out error);
        }
        int bits = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        int length = bits;
        if (parts.Length == 2 && (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > bits))
            return Fail($"'{parts[1]}' in '{text}' is not a prefix length 0-{bits}", out error);
        var first = Masked(address, length);
        if (!first.Equals(address))
            return Fail($"'{network}' in '{text}' has bits set past its /{length} prefix; write the network, {first}/{length}", out error);
        return new DestinationFilter(address, (byte)length, destinationPort);
    }

    /// <summary><paramref name="address"/> with every bit past <paramref name="length"/> cleared.</summary>
    public static IPAddress Masked(IPAddress address, int length)
    {
        byte[] bytes = address.GetAddressBytes();
        for (int i = 0; i < bytes.Length; i++, length -= 8)
            bytes[i] &= length >= 8 ? (byte)0xff : length <= 0 ? (byte)0 : (byte)(0xff << (8 - length));
        return new IPAddress(bytes);
    }

    private static DestinationFilter? Fail(string message, out string? error)
    {
        error = message;
        return null;
    }
}

/// <summary>
/// The <c>--only</c> SPECs of a route, in a canonical order without repeats (so two invocations
/// with the same set in another order are the same route). Empty is never made: a route with no
/// filter is a route for all destinations, and has none (null).
/// </summary>
public sealed record DestinationFilters
{
    public IReadOnlyList<DestinationFilter> Items { get; }

    private DestinationFilters(IReadOnlyList<DestinationFilter> items) => Items = items;

    /// <summary>The set of <paramref name="items"/>, or null when there are none.</summary>
    public static DestinationFilters? Of(IEnumerable<DestinationFilter> items)
    {
        var list = items.DistinctBy(f => f.ToString()).OrderBy(f => f.ToString(), StringComparer.Ordinal).ToList();
        return list.Count == 0 ? null : new DestinationFilters(list);
    }

    /// <summary>Parses every SPEC (each value may hold several, separated by commas); null and the first error when one is not a SPEC.</summary>
    public static DestinationFilters? Parse(IEnumerable<string> values, out string? error)
    {
        error = null;
        var items = new List<DestinationFilter>();
        foreach (string value in values)
        {
            foreach (string spec in value.Split(','))
            {
                if (DestinationFilter.Parse(spec, out error) is not { } filter) return null;
                items.Add(filter);
            }
        }
        return Of(items);
    }

    /// <summary>These filters and <paramref name="more"/>.</summary>
    public DestinationFilters With(IEnumerable<DestinationFilter> more) => Of(Items.Concat(more))!;

    /// <summary>The filters for which a packet of <paramref name="family"/> can match.</summary>
    public IEnumerable<DestinationFilter> For(AddressFamily family) => Items.Where(f => f.Covers(family));

    /// <summary>Why <paramref name="mechanism"/> (one that does not <see cref="IMechanism.FiltersDestinations"/>) cannot carry --only.</summary>
    public static string Refusal(IMechanism mechanism) =>
        $"--only needs a method whose packets the host routes by their mark ({string.Join(", ", Registry.All.Where(m => m.FiltersDestinations).Select(m => m.Name))}): "
        + $"method {mechanism.Name} sends all of the program's traffic through its route";

    /// <summary>"10.20.0.0/16,tcp:3306": canonical, and what <see cref="Parse"/> reads back.</summary>
    public override string ToString() => string.Join(',', Items);

    public bool Equals(DestinationFilters? other) => other is not null && ToString() == other.ToString();

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(ToString());
}
