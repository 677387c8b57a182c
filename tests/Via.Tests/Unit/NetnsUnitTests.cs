using System.Net;
using System.Net.Sockets;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Changes;
using Via.Mechanisms.Netns;

namespace Via.Tests.Unit;

/// <summary>The netns mechanism's journal kinds, launch additions, guard device and addressing.</summary>
public sealed class NetnsUnitTests
{
    [Fact]
    public void Its_changes_and_its_namespace_survive_the_journal()
    {
        var a = new NetnsAddressing("t22000", 22000);
        var route = new ActiveRoute("t22000", "k", "net:[1]", DateTimeOffset.UnixEpoch, "eth1", null, 1, 22000, "netns", "/sys/fs/cgroup/via/t22000", [], false,
        [
            new CreateNetworkNamespace(a.NamespacePath),
            new NetnsTable(a.TableName, a.HostName, "eth1", a.Peer4, a.Peer6, Guard4: true, Guard6: false),
            new ForwardRule(new Rule(AddressFamily.InterNetwork, 12000, 22000, Protocol: 86, InputInterface: a.HostName)),
            new ForwardRule(new Rule(AddressFamily.InterNetwork, 12000, 22000, Source: a.Peer4, SourceLength: 32, Protocol: 86)),
            new CreateVethPair("t22000", 22000, true),
            new InterfaceForwarding("t22000", "eth1", "0", null),
            new InterfaceForwarding("t22000", "eth1", "1", "0"),
            new Via.Mechanisms.Guard.AttachEgressGuard("/sys/fs/cgroup/via/t22000", NetnsAddressing.PeerIndex, NetnsAddressing.PeerName, Fixed: true),
        ])
        { Launch = new LaunchAdditions(new Dictionary<string, string>(), NetworkNamespace: a.NamespacePath) };
        var back = JournalCodec.Decode(JournalCodec.Encode(route), "test");
        Assert.Equal(route.Changes, back.Changes);
        Assert.Equal(a.NamespacePath, back.Launch.NetworkNamespace);
    }

    [Fact]
    public void A_guard_on_the_namespace_link_does_not_follow_IFACE()
    {
        var guard = new Via.Mechanisms.Guard.AttachEgressGuard("/cg", NetnsAddressing.PeerIndex, NetnsAddressing.PeerName, Fixed: true);
        Assert.Null(guard.ForDevice(7));
        Assert.Equal(7, ((Via.Mechanisms.Guard.AttachEgressGuard)new Via.Mechanisms.Guard.AttachEgressGuard("/cg", 3, "eth1").ForDevice(7)!).DeviceIndex);
    }

    [Fact]
    public void Names_and_addresses_are_the_tables_and_fit_the_kernel()
    {
        var a = new NetnsAddressing("t22254", 22254);
        Assert.Equal("via-t22254", a.HostName);
        Assert.True(a.HostName.Length <= 15); // IFNAMSIZ - 1
        Assert.Equal("via_t22254", a.TableName);
        var p = a.Peer4.GetAddressBytes();
        Assert.Equal(169, p[0]);
        Assert.Equal(254, p[1]);
        Assert.InRange(p[2], 64, 127); // 169.254.64.0/18: never 169.254.169.254
        Assert.NotEqual(new NetnsAddressing("t22000", 22000).Peer4, new NetnsAddressing("t22001", 22001).Peer4);
        Assert.Equal(IPAddress.Parse("fd76:6961:0:6ee::2"), a.Peer6);
    }
}
