using System.Globalization;

namespace Via.Cli.Commands.Doctor;

/// <summary>
/// Network daemons that may delete via's rules and routes (DESIGN.md point 12). systemd-networkd
/// deletes every routing-policy rule it did not make when it starts or reloads
/// (<c>ManageForeignRoutingPolicyRules=</c>, yes by default since systemd 249, networkd.conf(5));
/// NetworkManager leaves rules and routes it did not make alone, except in a table one of its
/// connections names in <c>ipv4.route-table</c>/<c>ipv6.route-table</c> (it then syncs that table).
/// Files are read under VIA_SYSTEMD_ROOT when set (tests), else under /.
/// </summary>
public static class NetworkDaemons
{
    public const string DropInPath = "/etc/systemd/networkd.conf.d/via.conf";
    public const string DropIn = "[Network]\nManageForeignRoutingPolicyRules=no\n";

    /// <param name="ManagesForeignRulesSetBy">The file whose setting decided (null: the built-in default, yes).</param>
    public sealed record State(bool NetworkdPresent, bool NetworkdRunning, bool ManagesForeignRules, string? ManagesForeignRulesSetBy,
        bool NetworkManagerPresent, bool NetworkManagerRunning);

    public static string Root => Environment.GetEnvironmentVariable("VIA_SYSTEMD_ROOT") is { Length: > 0 } r ? r : "/";

    private static string Under(string path) => Path.Combine(Root, path.TrimStart('/'));

    public static State Read()
    {
        bool networkdRunning = Directory.Exists(Under("/run/systemd/netif"));
        bool networkd = networkdRunning || new[] { "/lib/systemd/systemd-networkd", "/usr/lib/systemd/systemd-networkd" }.Any(p => File.Exists(Under(p)));
        var (manages, by) = ForeignRulesSetting(ConfigurationFiles().Select(f => (f, TryRead(Under(f)))).Where(x => x.Item2 is not null).Select(x => (x.f, x.Item2!)));
        bool nmRunning = Directory.Exists(Under("/run/NetworkManager"));
        bool nm = nmRunning || new[] { "/usr/sbin/NetworkManager", "/sbin/NetworkManager" }.Any(p => File.Exists(Under(p)));
        return new State(networkd, networkdRunning, manages, by, nm, nmRunning);
    }

    /// <summary>
    /// networkd.conf, then its drop-ins in lexical order of their names across /usr/lib, /run and /etc
    /// (a name in /etc hides the same name in /run and /usr/lib), as systemd reads them (systemd.syntax(7)).
    /// </summary>
    private static IEnumerable<string> ConfigurationFiles()
    {
        yield return "/etc/systemd/networkd.conf";
        var dropIns = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var dir in new[] { "/usr/lib/systemd/networkd.conf.d", "/run/systemd/networkd.conf.d", "/etc/systemd/networkd.conf.d" })
        {
            string real = Under(dir);
            if (!Directory.Exists(real)) continue;
            foreach (var f in Directory.EnumerateFiles(real, "*.conf"))
                dropIns[Path.GetFileName(f)] = dir + "/" + Path.GetFileName(f);
        }
        foreach (var f in dropIns.Values) yield return f;
    }

    /// <summary>The last <c>ManageForeignRoutingPolicyRules=</c> in a [Network] section wins; the default is yes.</summary>
    public static (bool Manages, string? SetBy) ForeignRulesSetting(IEnumerable<(string File, string Text)> files)
    {
        (bool, string?) result = (true, null);
        foreach (var (file, text) in files)
        {
            string section = "";
            foreach (var raw in text.Split('\n'))
            {
                string line = raw.Trim();
                if (line.Length == 0 || line[0] is '#' or ';') continue;
                if (line[0] == '[') { section = line; continue; }
                int eq = line.IndexOf('=');
                if (section != "[Network]" || eq < 0 || line[..eq].Trim() != "ManageForeignRoutingPolicyRules") continue;
                if (Boolean(line[(eq + 1)..].Trim()) is { } value) result = (value, file);
            }
        }
        return result;
    }

    private static bool? Boolean(string s) => s.ToLower(CultureInfo.InvariantCulture) switch
    {
        "1" or "yes" or "y" or "true" or "t" or "on" => true,
        "0" or "no" or "n" or "false" or "f" or "off" => false,
        _ => null,
    };

    public static IEnumerable<DoctorCommand.Check> Checks(State s)
    {
        if (!s.NetworkdPresent)
            yield return new("systemd-networkd", DoctorCommand.Status.Ok, "not installed");
        else if (!s.ManagesForeignRules)
            yield return new("systemd-networkd", DoctorCommand.Status.Ok, $"leaves rules it did not make alone (ManageForeignRoutingPolicyRules=no in {s.ManagesForeignRulesSetBy})");
        else
            yield return new("systemd-networkd", DoctorCommand.Status.Warn,
                $"{(s.NetworkdRunning ? "running" : "installed")}; it deletes every rule it did not make, via's too, when it starts or reloads "
                + $"(ManageForeignRoutingPolicyRules= {(s.ManagesForeignRulesSetBy is null ? "defaults to yes" : "is yes in " + s.ManagesForeignRulesSetBy)}): "
                + "a routed program then loses its way out (its packets are dropped, never leaked). To stop it, create "
                + $"{DropInPath} with \"{DropIn.TrimEnd('\n').Replace("\n", "\\n", StringComparison.Ordinal)}\" and restart systemd-networkd (it reads networkd.conf when it starts)");
        if (s.NetworkManagerPresent)
            yield return new("NetworkManager", DoctorCommand.Status.Ok,
                $"{(s.NetworkManagerRunning ? "running" : "installed")}; it leaves rules and routes it did not make alone, unless a connection's ipv4.route-table or ipv6.route-table names one of via's tables");
    }

    private static string? TryRead(string path)
    {
        try { return File.Exists(path) ? File.ReadAllText(path) : null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }
}
