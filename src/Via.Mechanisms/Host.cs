using Via.Kernel.Netlink;

namespace Via.Mechanisms;

/// <summary>What changes are applied with: one rtnetlink socket in via's network namespace, opened on first use.</summary>
public sealed class Host : IDisposable
{
    private Rtnl? _rtnl;

    public Rtnl Rtnl => _rtnl ??= Rtnl.Open();

    public void Dispose() => _rtnl?.Dispose();
}
