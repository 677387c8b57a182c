using Xunit.Abstractions;

namespace Via.Tests.Kernel.Contract;

/// <summary>The contract's row for the net_cls mechanism (cgroup v1 classid matched by nftables meta cgroup, reroute, SNAT).
/// net_cls is host-wide: only via's cgroups t2385x are made, and the row checks they are gone. Its own checks: <see cref="NftTests"/>.</summary>
[Collection("nft")]
public sealed class NetclsContract(TopologyFixture fixture, ITestOutputHelper output) : MechanismContract(fixture, output)
{
    protected override string Method => "netcls";
    protected override uint FirstTable => 23850;
    protected override string KillSwitchTcp => "error TimeoutError";
}
