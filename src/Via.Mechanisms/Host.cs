using Via.Kernel;
using Via.Kernel.Netlink;

namespace Via.Mechanisms;

/// <summary>
/// What changes are applied with: one rtnetlink socket, opened on first use, in via's own network
/// namespace or in the one a journal names (a socket stays in the namespace it was opened in).
/// </summary>
public sealed class Host : IDisposable
{
    private readonly string? _networkPath;
    private readonly IRtnlBatcher? _batcher;
    private Rtnl? _rtnl;

    public Host() { }

    /// <summary>A host whose batches of route and rule changes go to <paramref name="batcher"/> (tests: a fake).</summary>
    public Host(IRtnlBatcher batcher) => _batcher = batcher;

    private Host(string networkPath) => _networkPath = networkPath;

    /// <summary>A host bound to another network namespace, or null when that namespace no longer exists.</summary>
    public static Host? ForNetwork(string networkNamespace)
    {
        if (networkNamespace == Namespaces.CurrentNetwork()) return new Host();
        string? path = Namespaces.FindNetwork(networkNamespace);
        return path is null ? null : new Host(path);
    }

    public Rtnl Rtnl => _rtnl ??= _networkPath is null ? Rtnl.Open() : Namespaces.InNetwork(_networkPath, Rtnl.Open);

    /// <summary>What the <see cref="Applier"/> sends runs of route and rule changes to: <see cref="Rtnl"/>, unless the host was given another.</summary>
    public IRtnlBatcher Batcher => _batcher ?? Rtnl;

    /// <summary>A subscription to the kernel's announcements of changed links, addresses, routes and rules, in this host's namespace.</summary>
    public RtnlMonitor OpenMonitor() => _networkPath is null ? RtnlMonitor.Open() : Namespaces.InNetwork(_networkPath, RtnlMonitor.Open);

    /// <summary>Runs <paramref name="action"/> in this host's network namespace (nftables, sysctls under /proc/sys/net).</summary>
    public T InNetwork<T>(Func<T> action) => _networkPath is null ? action() : Namespaces.InNetwork(_networkPath, action);

    public void Dispose() => _rtnl?.Dispose();
}
