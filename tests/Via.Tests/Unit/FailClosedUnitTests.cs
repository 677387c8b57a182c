using Via.Cli;
using Via.Kernel;
using Via.Kernel.Netlink;

namespace Via.Tests.Unit;

/// <summary>Fail-closed rules that need no kernel objects: option parsing, the netlink receive timeout, one wording of the kill switch.</summary>
public sealed class FailClosedUnitTests
{
    [Theory]
    [InlineData("--verbos", "run", "--dev", "eth1", "--verbos", "--", "true")]
    [InlineData("--verbos", "run", "--verbos", "--dev", "eth1", "--", "true")]
    [InlineData("-x", "run", "--dev", "eth1", "-x", "curl")]
    [InlineData("--al", "down", "--al")]
    [InlineData(null, "run", "--dev", "eth1", "--verbose", "--", "curl", "--verbos")]
    [InlineData(null, "run", "--dev=eth1", "-v", "--table", "30000", "--", "true")]
    [InlineData(null, "run", "--dev", "eth1", "curl", "-s", "http://x")]
    [InlineData(null, "run", "--dev", "--weird-iface", "--", "true")]
    [InlineData(null, "down", "t22000")]
    [InlineData(null, "gc", "--dry-run", "--json")]
    [InlineData(null, "run", "--help")]
    public void An_unknown_option_before_the_program_is_found(string? unknown, params string[] args)
    {
        var result = Program.BuildRoot(args[0]).Parse(args);
        Assert.Equal(unknown, Program.UnknownOption(result, args));
    }

    [Fact]
    public void A_netlink_request_the_kernel_never_answers_times_out()
    {
        // NLMSG_NOOP without NLM_F_ACK: the kernel takes it and answers nothing.
        using var rtnl = Rtnl.Open(TimeSpan.FromMilliseconds(200));
        var silent = new RtnlRequest(new NetlinkMessageBuilder(1 /* NLMSG_NOOP */, Nl.NLM_F_REQUEST), "netlink noop", "", []);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<KernelException>(() => rtnl.Batch([silent]));
        Assert.Equal(Errno.EAGAIN, e.ErrorCode);
        Assert.Contains("no answer from the kernel within 0.2 s", e.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    /// <summary>What the kernel answers a program whose route's interface is gone (checked in a namespace by KillSwitchTests).</summary>
    private const string KillSwitchError = "EHOSTUNREACH (\"No route to host\", IPv4 and IPv6 alike)";

    [Fact]
    public void Help_and_readme_name_the_same_kill_switch_error()
    {
        string Flat(string s) => string.Join(' ', s.Replace("`", "", StringComparison.Ordinal).Split((char[])[' ', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries));
        string help = Flat(Via.Cli.Commands.Run.RunCommandDefinition.Create().Description!);
        string text = File.ReadAllText(Path.Combine(Via.Tests.Kernel.ViaBinary.RepositoryRoot, "README.md"));
        // The netns method's section states its own kill-switch errors (a forwarded IPv6 packet gets
        // ENETUNREACH); everywhere else the README speaks of the socket-side methods, as help does.
        int netns = text.IndexOf("### The netns method", StringComparison.Ordinal);
        Assert.True(netns >= 0, "the README has no netns method section");
        int after = text.IndexOf("\n#", netns + 1, StringComparison.Ordinal);
        string readme = Flat(text[..netns] + (after < 0 ? "" : text[after..]));
        Assert.Contains("fail with " + KillSwitchError, help);
        Assert.Contains("fail with " + KillSwitchError, readme);
        Assert.DoesNotContain("ENETUNREACH", help);
        Assert.DoesNotContain("ENETUNREACH", readme);
    }
}
