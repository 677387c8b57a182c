using Xunit.Abstractions;

namespace Via.Tests.Kernel.Contract;

/// <summary>The contract's row for the net_cls mechanism (cgroup v1 classid matched by nftables meta cgroup, reroute, SNAT).
/// Nothing left also means no net_cls cgroup in the row's subtree (net_cls is host-wide). Its own checks: <see cref="NetclsTests"/>.</summary>
public sealed class NetclsContract(TopologyFixture fixture, ITestOutputHelper output) : MechanismContract(fixture, output)
{
    protected override string Method => "netcls";
    protected override uint FirstTable => 23850;
    protected override string? KillSwitchTcp => "error TimeoutError";

    protected override string ViaObjects() => base.ViaObjects() + NetclsTests.Leftovers(Subtree);
}
