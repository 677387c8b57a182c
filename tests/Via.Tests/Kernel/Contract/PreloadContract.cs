using Xunit.Abstractions;

namespace Via.Tests.Kernel.Contract;

/// <summary>The contract's row for the preload mechanism (LD_PRELOAD library + root tagger): a static binary is refused. Its own tests: <see cref="PreloadTests"/>.</summary>
public sealed class PreloadContract(TopologyFixture fixture, ITestOutputHelper output) : MechanismContract(fixture, output)
{
    protected override string Method => "preload";
    protected override uint FirstTable => 23450;
    protected override bool ServesStatic => false;
}
