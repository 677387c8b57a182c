namespace Via.Mechanisms.Dns;

/// <summary>Which program left a per-link DNS state file, so planning knows how to read it.</summary>
public enum LinkDnsFormat { NetworkdLink, NetworkdLease, NetworkManagerLease, Dhclient }

/// <summary>One state file that may name an interface's DNS servers, as read.</summary>
public sealed record LinkDnsFile(LinkDnsFormat Format, string Path, string Text);

/// <summary>
/// The host's resolver configuration as a program started by via would see it, read as raw text
/// (planning, which is pure, makes sense of it). Missing or unreadable files are absent, not errors.
/// </summary>
/// <param name="ResolvConf">/etc/resolv.conf's text; null when it is missing or a dangling symlink.</param>
/// <param name="ResolvConfLink">Where /etc/resolv.conf points, when it is a symlink (e.g. systemd-resolved's stub file).</param>
/// <param name="NsSwitch">/etc/nsswitch.conf's text; null when missing (glibc then uses dns and files).</param>
/// <param name="NscdDirectory">nscd's socket directory when it exists (/run/nscd, or /var/run/nscd).</param>
/// <param name="NscdRunning">Whether nscd's socket is there: glibc then asks nscd before anything else.</param>
/// <param name="LinkFiles">State files that may name the interface's own DNS servers, most authoritative first.</param>
public sealed record HostResolver(
    string? ResolvConf,
    string? ResolvConfLink,
    string? NsSwitch,
    string? NscdDirectory,
    bool NscdRunning,
    IReadOnlyList<LinkDnsFile> LinkFiles)
{
    public const string ResolvConfPath = "/etc/resolv.conf", NsSwitchPath = "/etc/nsswitch.conf";

    /// <summary>Reads the host's files and the state files about interface <paramref name="linkName"/> (index <paramref name="linkIndex"/>).</summary>
    public static HostResolver Read(int linkIndex, string linkName)
    {
        string? link = null;
        try { link = File.ResolveLinkTarget(ResolvConfPath, returnFinalTarget: true)?.FullName; }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        string? nscd = new[] { "/run/nscd", "/var/run/nscd" }.FirstOrDefault(Directory.Exists);

        var files = new List<LinkDnsFile>();
        void Add(LinkDnsFormat format, string path)
        {
            if (Text(path) is { } text) files.Add(new LinkDnsFile(format, path, text));
        }
        // systemd-networkd (and resolved's view of it), per interface index.
        Add(LinkDnsFormat.NetworkdLink, $"/run/systemd/netif/links/{linkIndex}");
        Add(LinkDnsFormat.NetworkdLease, $"/run/systemd/netif/leases/{linkIndex}");
        // NetworkManager, without D-Bus: its internal DHCP client's lease, or dhclient's when it runs that.
        foreach (var path in Glob("/var/lib/NetworkManager", $"internal-*-{linkName}.lease")) Add(LinkDnsFormat.NetworkManagerLease, path);
        foreach (var path in Glob("/var/lib/NetworkManager", $"dhclient-*-{linkName}.lease")) Add(LinkDnsFormat.Dhclient, path);
        // ISC dhclient run by ifupdown (Debian) or by hand; the files may hold several interfaces' leases.
        foreach (var dir in new[] { "/var/lib/dhcp", "/var/lib/dhclient" })
            foreach (var path in Glob(dir, "dhclient*.leases")) Add(LinkDnsFormat.Dhclient, path);

        return new HostResolver(Text(ResolvConfPath), link, Text(NsSwitchPath), nscd,
            nscd is not null && File.Exists(Path.Combine(nscd, "socket")), files);
    }

    private static string? Text(string path)
    {
        try { return File.Exists(path) ? File.ReadAllText(path) : null; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    private static IEnumerable<string> Glob(string directory, string pattern)
    {
        try { return Directory.Exists(directory) ? Directory.GetFiles(directory, pattern).Order(StringComparer.Ordinal).ToArray() : []; }
        catch (IOException) { return []; }
        catch (UnauthorizedAccessException) { return []; }
    }
}
