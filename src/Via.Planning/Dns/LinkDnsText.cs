using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;

namespace Via.Planning.Dns;

/// <summary>
/// The DNS servers an interface was given, from the state files of whatever configured it (pure:
/// text in, addresses out; reading the files is <see cref="Via.Mechanisms.Dns.HostResolver"/>'s).
/// </summary>
public static partial class LinkDnsText
{
    /// <summary>
    /// systemd-networkd's per-link state (/run/systemd/netif/links/IFINDEX) and its DHCP lease
    /// (/run/systemd/netif/leases/IFINDEX), and NetworkManager's internal client's lease
    /// (/var/lib/NetworkManager/internal-UUID-IFACE.lease): KEY=VALUE lines, servers in "DNS=a b".
    /// </summary>
    public static IReadOnlyList<IPAddress> KeyValue(string text)
    {
        var servers = new List<IPAddress>();
        foreach (string line in text.Split('\n'))
        {
            string t = line.Trim();
            if (!t.StartsWith("DNS=", StringComparison.Ordinal)) continue;
            foreach (string item in t[4..].Split((char[])[' ', '\t', ','], StringSplitOptions.RemoveEmptyEntries))
                Add(servers, item);
        }
        return servers;
    }

    /// <summary>
    /// ISC dhclient's lease database (/var/lib/dhcp/dhclient.IFACE.leases, dhclient.leases): the
    /// servers of the newest lease of <paramref name="iface"/> that has not expired at <paramref name="now"/>.
    /// dhclient appends leases, so the last block is the newest.
    /// </summary>
    public static IReadOnlyList<IPAddress> Dhclient(string text, string iface, DateTimeOffset now)
    {
        IReadOnlyList<IPAddress> found = [];
        foreach (Match lease in LeaseBlock().Matches(text))
        {
            string body = lease.Groups[1].Value;
            var name = InterfaceLine().Match(body);
            if (!name.Success || name.Groups[1].Value != iface) continue;
            var expire = ExpireLine().Match(body);
            if (expire.Success && DateTimeOffset.TryParseExact(expire.Groups[1].Value, "yyyy/MM/dd HH:mm:ss", CultureInfo.InvariantCulture,
                    DateTimeStyles.AssumeUniversal, out var until) && until <= now)
                continue;
            var dns = ServersLine().Match(body);
            if (!dns.Success) continue;
            var servers = new List<IPAddress>();
            foreach (string item in dns.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                Add(servers, item);
            if (servers.Count > 0) found = servers;
        }
        return found;
    }

    private static void Add(List<IPAddress> servers, string item)
    {
        if (IPAddress.TryParse(item.Split('%')[0], out var a) && !servers.Contains(a)) servers.Add(a);
    }

    [GeneratedRegex(@"lease\s*\{(.*?)\n\s*\}", RegexOptions.Singleline)]
    private static partial Regex LeaseBlock();

    [GeneratedRegex(@"^\s*interface\s+""([^""]+)""\s*;", RegexOptions.Multiline)]
    private static partial Regex InterfaceLine();

    // "expire 4 2024/05/30 12:00:00;": a weekday, then the time in UTC; "expire never;" never expires.
    [GeneratedRegex(@"^\s*expire\s+\d\s+(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2})\s*;", RegexOptions.Multiline)]
    private static partial Regex ExpireLine();

    [GeneratedRegex(@"^\s*option\s+domain-name-servers\s+([^;]+);", RegexOptions.Multiline)]
    private static partial Regex ServersLine();
}
