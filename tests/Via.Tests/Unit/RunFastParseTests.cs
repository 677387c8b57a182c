using Via.Cli;
using Via.Cli.Commands.Run;

namespace Via.Tests.Unit;

/// <summary>
/// 'via run' read without System.CommandLine (RunFastParse) means what System.CommandLine reads,
/// and leaves to it every command line it is not sure of (help, errors, unusual forms).
/// </summary>
public sealed class RunFastParseTests
{
    public static TheoryData<string> Same => new()
    {
        "run --dev eth1 -- true",
        "run --dev=eth1 -- curl -s https://example.org",
        "run --dev eth1 --gateway 192.0.2.1 --src 192.0.2.7 --table 30000 --user alice -- prog --dev x -- y",
        "run -v --dev wg0 --dry-run --json -- true",
        "run --dev eth1 --dns 9.9.9.9,2620:fe::fe --dns 1.1.1.1 -- true",
        "run --dev eth1 --dns host --verbose -- true",
        "run --dev eth1 --gateway=2001:db8::1 -- true",
        "run --dev eth1 --",
        "run --dev eth1 --method netns --ip 192.0.2.7/24 -- firefox",
        "run --dev eth1 --ip 192.0.2.7/24 --ip 2001:db8::7/64 -- true",
        "run --dev eth1 --ip=2001:db8::7,192.0.2.7 --method=netns -- true",
        "run --route work -- curl -s https://example.org",
        "run --route=work --user alice -v -- true",
        "run --route work --dev eth1 --dns 9.9.9.9 -- true", // refused by RunCommand, alike
        "run --dev eth1 --only tcp:3306 --only 10.20.0.0/16 -- app",
        "run --route work --only=2001:db8::/32@udp:53,tcp:80 -- true",
    };

    [Theory]
    [MemberData(nameof(Same))]
    public void Agrees_with_System_CommandLine(string line)
    {
        string[] args = line.Split(' ');
        var fast = RunFastParse.TryParse(args);
        Assert.NotNull(fast);
        var result = Program.BuildRoot("run").Parse(args);
        Assert.Empty(result.Errors);
        var slow = RunCommandDefinition.Options(result);
        Assert.Equal(slow.Device, fast.Device);
        Assert.Equal(slow.Gateway, fast.Gateway);
        Assert.Equal(slow.Source, fast.Source);
        Assert.Equal(slow.Table, fast.Table);
        Assert.Equal(slow.User, fast.User);
        Assert.Equal(slow.Dns.Kind, fast.Dns.Kind);
        Assert.Equal(slow.Dns.Servers, fast.Dns.Servers);
        Assert.Equal(slow.DryRun, fast.DryRun);
        Assert.Equal(slow.Json, fast.Json);
        Assert.Equal(slow.Verbose, fast.Verbose);
        Assert.Equal(slow.Command, fast.Command);
        Assert.Equal(slow.Ip, fast.Ip);
        Assert.Equal(slow.Route, fast.Route);
        Assert.Equal(slow.Given, fast.Given);
        Assert.Equal(slow.Only?.ToString(), fast.Only?.ToString());
    }

    [Theory]
    [InlineData("run --help")]
    [InlineData("run --dev eth1 true")]                  // no '--': System.CommandLine's hint
    [InlineData("run --gateway 192.0.2.1 -- true")]      // no --dev
    [InlineData("run --dev eth1 --dev eth2 -- true")]
    [InlineData("run --dev eth1 --verbos -- true")]
    [InlineData("run --dev eth1 --gateway 10.2.0 -- true")]
    [InlineData("run --dev eth1 --table -1 -- true")]
    [InlineData("run --dev eth1 --dns 10.2.0 -- true")]
    [InlineData("run --dev eth1 --ip 10.2.0.777/24 -- true")]    // System.CommandLine says what is wrong with --ip
    [InlineData("run --dev eth1 --ip 10.2.0.7/24,10.2.0.8/24 -- true")]
    [InlineData("run --dev eth1 --ip 10.2.0.7/33 -- true")]
    [InlineData("run --dev eth1 --only sctp:80 -- true")]            // System.CommandLine says what is wrong with --only
    [InlineData("run --dev eth1 --verbose false -- true")]
    [InlineData("run --dev eth1 --dry-run=true -- true")]
    [InlineData("run --dev:eth1 -- true")]
    [InlineData("run --dev @args -- true")]
    [InlineData("run --dev eth1 -- @args")]
    [InlineData("run --dev")]
    [InlineData("ls --json")]
    public void Leaves_the_rest_to_System_CommandLine(string line) => Assert.Null(RunFastParse.TryParse(line.Split(' ')));
}
