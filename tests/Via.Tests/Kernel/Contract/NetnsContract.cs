using Xunit.Abstractions;

namespace Via.Tests.Kernel.Contract;

/// <summary>
/// The contract's row for the netns mechanism (the program in a namespace of its own, forwarded out
/// of the uplink with NAT). Nothing left also means no namespace file, no veth, no nft table of via's,
/// and forwarding on up2 as it was. Its own tests: <see cref="NetnsTests"/> (tables 23700-23749).
/// </summary>
public sealed class NetnsContract(TopologyFixture fixture, ITestOutputHelper output) : MechanismContract(fixture, output)
{
    protected override string Method => "netns";
    protected override uint FirstTable => 23750;

    protected override string KillSwitchError6 => "Network is unreachable";

    protected override string ViaObjects() => base.ViaObjects() + NetnsTests.Leftovers(T, State);
}
