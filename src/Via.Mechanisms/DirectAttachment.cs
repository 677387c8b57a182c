using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Via.Mechanisms;

/// <summary>An address of the program's own on IFACE's network (<c>--ip ADDRESS[/PREFIX]</c>); no prefix: IFACE's on-link prefix that holds it.</summary>
public sealed record HostAddress(IPAddress Address, byte? PrefixLength)
{
    public AddressFamily Family => Address.AddressFamily;

    public bool Is6 => Family == AddressFamily.InterNetworkV6;

    public override string ToString() => PrefixLength is { } p ? $"{Address}/{p}" : Address.ToString();

    /// <summary>Whether <paramref name="other"/> lies in this address's prefix.</summary>
    public bool Contains(IPAddress other) => PrefixLength is { } p && other.AddressFamily == Family && SamePrefix(Address, other, p);

    /// <summary>Whether <paramref name="a"/> and <paramref name="b"/> (of one family) agree in their first <paramref name="bits"/> bits.</summary>
    public static bool SamePrefix(IPAddress a, IPAddress b, int bits)
    {
        byte[] x = a.GetAddressBytes(), y = b.GetAddressBytes();
        for (int i = 0; i < x.Length && bits > 0; i++, bits -= 8)
        {
            int mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
            if ((x[i] & mask) != (y[i] & mask)) return false;
        }
        return true;
    }

    /// <summary>ADDRESS or ADDRESS/PREFIX, a unicast address a host can have on a LAN; null with the reason otherwise.</summary>
    public static HostAddress? Parse(string text, out string? error)
    {
        error = null;
        string[] parts = text.Split('/');
        string address = parts[0];
        // IPAddress.TryParse also takes inet_aton's shorthands ("10.2.0" is 10.2.0.0) and scope ids: typos, here.
        bool plausible = parts.Length <= 2 && !address.Contains('%') && (address.Contains(':') || address.Split('.').Length == 4);
        if (!plausible || !IPAddress.TryParse(address, out var ip))
        {
            error = $"'{text}' is not an IPv4 or IPv6 address with an optional prefix length (ADDRESS[/PREFIX])";
            return null;
        }
        int max = ip.AddressFamily == AddressFamily.InterNetworkV6 ? 128 : 32;
        byte? prefix = null;
        if (parts.Length == 2)
        {
            int p = parts[1].Length is > 0 and <= 3 && parts[1].All(char.IsAsciiDigit) ? int.Parse(parts[1], CultureInfo.InvariantCulture) : -1;
            if (p < 1 || p > max)
            {
                error = $"'{text}': the prefix length must be a number from 1 to {max}";
                return null;
            }
            prefix = (byte)p;
        }
        string? why = ip switch
        {
            _ when IPAddress.IsLoopback(ip) => "a loopback address",
            _ when ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any) => "the unspecified address",
            _ when ip.Equals(IPAddress.Broadcast) => "the broadcast address",
            _ when ip.IsIPv6Multicast || (ip.AddressFamily == AddressFamily.InterNetwork && ip.GetAddressBytes()[0] >= 224) => "a multicast or reserved address",
            _ when ip.IsIPv6LinkLocal => "link-local (the macvlan gets one of its own)",
            _ when ip.IsIPv4MappedToIPv6 => "an IPv4-mapped IPv6 address (give the IPv4 address)",
            _ when ip.AddressFamily == AddressFamily.InterNetwork && ip.GetAddressBytes()[0] == 169 && ip.GetAddressBytes()[1] == 254 => "link-local",
            _ => null,
        };
        // An IPv4 prefix's first and last addresses name the network and its broadcast (/31 and /32 have none: RFC 3021).
        if (why is null && prefix is { } len && ip.AddressFamily == AddressFamily.InterNetwork && len <= 30)
        {
            uint value = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(ip.GetAddressBytes());
            uint host = value & (uint.MaxValue >> len);
            if (host == 0) why = $"the network address of its /{len}";
            else if (host == uint.MaxValue >> len) why = $"the broadcast address of its /{len}";
        }
        if (why is not null)
        {
            error = $"'{text}' is {why}; give an unused address of the interface's network";
            return null;
        }
        return new HostAddress(ip, prefix);
    }
}

/// <summary>
/// The program attached to IFACE's network directly, firejail's <c>--ip</c> (the netns mechanism's
/// macvlan): its own addresses there, at most one per family, and the next hops it takes, IFACE's
/// (null: only the on-link prefix). As asked, the prefixes may be missing and the gateways are not
/// known yet; planned (<c>Via.Planning.DirectPlanner</c>), both are decided.
/// </summary>
public sealed record DirectAttachment(HostAddress? V4, HostAddress? V6, IPAddress? Gateway4 = null, IPAddress? Gateway6 = null)
{
    public IEnumerable<HostAddress> Addresses => new[] { V4, V6 }.OfType<HostAddress>();

    /// <summary>What makes two routes the same attachment (Planner.Key): the addresses, whatever prefix was written.</summary>
    public string Key => "ip=" + string.Join(',', Addresses.Select(a => a.Address));

    public override string ToString() => string.Join(',', Addresses);

    /// <summary>
    /// The values of <c>--ip</c> (repeatable, or comma-separated): one IPv4 and/or one IPv6 address,
    /// each ADDRESS[/PREFIX]. Null with a one-line reason when one is malformed or a family repeats.
    /// </summary>
    public static DirectAttachment? Parse(IReadOnlyList<string> values, out string? error)
    {
        error = null;
        HostAddress? v4 = null, v6 = null;
        foreach (var item in values.SelectMany(v => v.Split(',')).Select(v => v.Trim()))
        {
            var a = HostAddress.Parse(item, out error);
            if (a is null) return null;
            if ((a.Is6 ? v6 : v4) is { } before)
            {
                error = $"--ip takes one IPv4 and one IPv6 address at most, not both {before} and {a}";
                return null;
            }
            if (a.Is6) v6 = a; else v4 = a;
        }
        if (v4 is null && v6 is null)
        {
            error = "--ip needs an address (ADDRESS[/PREFIX], one IPv4 and/or one IPv6)";
            return null;
        }
        return new DirectAttachment(v4, v6);
    }
}
