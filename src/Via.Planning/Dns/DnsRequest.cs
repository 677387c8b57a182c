using System.Net;

namespace Via.Planning.Dns;

/// <summary>What --dns asked for: nothing (decide from the host), the host's resolver as it is, or these servers.</summary>
public sealed record DnsRequest(DnsRequest.Choice Kind, IReadOnlyList<IPAddress> Servers)
{
    public enum Choice { Default, Host, Servers }

    /// <summary>glibc reads at most three nameserver lines (MAXNS); more would be silently ignored.</summary>
    public const int MaxServers = 3;

    public static readonly DnsRequest Default = new(Choice.Default, []);
    public static readonly DnsRequest Host = new(Choice.Host, []);

    /// <summary>
    /// Parses the values of every --dns (each "host", or addresses separated by commas). Strict: an
    /// empty item, a shorthand such as "10.2.0" (inet_aton would take it), a name, or "host" mixed
    /// with addresses is refused with a message naming it. Returns null and the error then.
    /// </summary>
    public static DnsRequest? Parse(IReadOnlyList<string> values, out string? error)
    {
        error = null;
        if (values.Count == 0) return Default;
        var servers = new List<IPAddress>();
        bool host = false;
        foreach (string value in values)
        {
            if (value.Length == 0) { error = "--dns needs an address (or 'host'), e.g. --dns 9.9.9.9,2620:fe::fe"; return null; }
            foreach (string item in value.Split(','))
            {
                if (item.Length == 0) { error = $"'{value}' has an empty item; --dns takes addresses separated by commas, e.g. --dns 9.9.9.9,2620:fe::fe"; return null; }
                if (item == "host") { host = true; continue; }
                bool plausible = item.Contains(':') || item.Split('.').Length == 4;
                if (!plausible || !IPAddress.TryParse(item, out var address) || item.Contains('%'))
                {
                    error = $"'{item}' is not an IPv4 or IPv6 address (option --dns; 'host' keeps the host's resolver)";
                    return null;
                }
                if (IPAddress.Any.Equals(address) || IPAddress.IPv6Any.Equals(address))
                {
                    error = $"'{item}' is not a server address (option --dns)";
                    return null;
                }
                if (!servers.Contains(address)) servers.Add(address);
            }
        }
        if (host && servers.Count > 0) { error = "--dns host keeps the host's resolver; it cannot be combined with addresses"; return null; }
        if (host) return Host;
        if (servers.Count > MaxServers)
        {
            error = $"--dns names {servers.Count} servers; the C library uses at most {MaxServers} (resolv.conf's MAXNS)";
            return null;
        }
        return new DnsRequest(Choice.Servers, servers);
    }
}
