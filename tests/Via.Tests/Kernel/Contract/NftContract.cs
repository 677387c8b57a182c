using Xunit.Abstractions;

namespace Via.Tests.Kernel.Contract;

/// <summary>The contract's row for the nftables mechanism (socket cgroupv2 match, reroute, SNAT). Its own checks: <see cref="NftTests"/>.</summary>
public sealed class NftContract(TopologyFixture fixture, ITestOutputHelper output) : MechanismContract(fixture, output)
{
    protected override string Method => "nft";
    protected override uint FirstTable => 23800;
    protected override string? KillSwitchTcp => "error TimeoutError";
}
