using System.Net;
using System.Text;

namespace Via.Planning.Dns;

/// <summary>resolv.conf(5), read and written (pure text in, text out).</summary>
public static class ResolvConf
{
    /// <summary>The nameserver addresses, in order (a scope suffix such as %eth0 dropped; unparsable lines skipped).</summary>
    public static IReadOnlyList<IPAddress> Nameservers(string text)
    {
        var servers = new List<IPAddress>();
        foreach (var words in Lines(text))
        {
            if (words.Length < 2 || words[0] != "nameserver") continue;
            string value = words[1].Split('%')[0];
            if (IPAddress.TryParse(value, out var address)) servers.Add(address);
        }
        return servers;
    }

    /// <summary>
    /// The program's own resolv.conf: the given servers, and the host's search, domain and options
    /// lines (they say how names are completed and asked, not where: keeping them keeps short names working).
    /// </summary>
    public static string Private(IReadOnlyList<IPAddress> servers, string? hostText, string why)
    {
        var sb = new StringBuilder();
        sb.Append("# via: this program's own resolver configuration (").Append(why).Append("); the host's file is unchanged\n");
        foreach (var s in servers) sb.Append("nameserver ").Append(s).Append('\n');
        foreach (string line in (hostText ?? "").Split('\n'))
        {
            string t = line.Trim();
            if (t.StartsWith("search", StringComparison.Ordinal) || t.StartsWith("domain", StringComparison.Ordinal) || t.StartsWith("options", StringComparison.Ordinal))
                sb.Append(t).Append('\n');
        }
        return sb.ToString();
    }

    private static IEnumerable<string[]> Lines(string text)
    {
        foreach (string line in text.Split('\n'))
        {
            string t = line.Trim();
            if (t.Length == 0 || t[0] == '#' || t[0] == ';') continue;
            yield return t.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        }
    }
}

/// <summary>nsswitch.conf(5)'s hosts line, read and rewritten (pure).</summary>
public static class NsSwitch
{
    /// <summary>
    /// Modules that answer in the program's own process and send nothing themselves: files
    /// (/etc/hosts), dns (the program's own queries, routed with it), myhostname (this host's names).
    /// Every other one hands the lookup to something else: resolve (systemd-resolved over varlink),
    /// mymachines (machined), mdns* (avahi-daemon), wins (winbindd), sss, ldap, nis...; their queries
    /// leave by that daemon's route, not the program's.
    /// </summary>
    public static readonly IReadOnlySet<string> InProcess = new HashSet<string>(StringComparer.Ordinal) { "files", "dns", "myhostname" };

    /// <summary>The modules of the hosts line, in order (none when there is no such line; glibc's default is then dns, files).</summary>
    public static IReadOnlyList<string> HostsModules(string text)
    {
        foreach (string line in text.Split('\n'))
        {
            if (HostsItems(line) is { } items) return items.Where(i => i[0] != '[').ToList();
        }
        return [];
    }

    /// <summary>The file with each hosts line keeping only in-process modules (with their [ACTION]s), dns always among them; other lines unchanged.</summary>
    public static string Private(string text)
    {
        var sb = new StringBuilder();
        bool any = false;
        var lines = text.Split('\n');
        for (int n = 0; n < lines.Length; n++)
        {
            string line = lines[n];
            if (HostsItems(line) is { } items)
            {
                any = true;
                var kept = new List<string>();
                bool keepActions = false;
                foreach (string item in items)
                {
                    if (item[0] == '[') { if (keepActions) kept.Add(item); continue; }
                    keepActions = InProcess.Contains(item);
                    if (keepActions) kept.Add(item);
                }
                if (!kept.Contains("dns")) kept.Add("dns");
                // An action after the last module means nothing, and a "return" before dns would end the lookup early.
                while (kept.Count > 0 && kept[^1][0] == '[') kept.RemoveAt(kept.Count - 1);
                line = "hosts:          " + string.Join(' ', kept);
            }
            sb.Append(line);
            if (n < lines.Length - 1) sb.Append('\n');
        }
        if (!any) sb.Append(text.EndsWith('\n') || text.Length == 0 ? "" : "\n").Append("hosts:          files dns\n");
        return sb.ToString();
    }

    /// <summary>The items of a hosts line (modules and bracketed actions, an action as one item), or null for any other line.</summary>
    private static List<string>? HostsItems(string line)
    {
        string t = line.Split('#')[0].Trim();
        if (!t.StartsWith("hosts", StringComparison.Ordinal)) return null;
        string rest = t["hosts".Length..].TrimStart();
        if (!rest.StartsWith(':')) return null;
        var items = new List<string>();
        var words = rest[1..].Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < words.Length; i++)
        {
            string w = words[i];
            if (w[0] == '[')
                while (!w.EndsWith(']') && i + 1 < words.Length) w += words[++i];
            items.Add(w);
        }
        return items;
    }
}
