using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>A routed program cannot take its sockets out of the route, nor leave the cgroup.</summary>
public sealed class AntiEscapeTests(TopologyFixture<AntiEscapeTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<AntiEscapeTests>>
{
    private Topology T => fixture.Topology;

    [RootFact]
    public void Even_root_cannot_reset_the_mark_or_bind_another_device()
    {
        const string program = """
            import os, socket
            for name, opt, val in (('SO_MARK', 36, 0), ('SO_BINDTODEVICE', 25, b'up1'), ('SO_BINDTOIFINDEX', 62, 1)):
                s = socket.socket()
                try:
                    s.setsockopt(socket.SOL_SOCKET, opt, val); print(name, 'allowed')
                except OSError as e:
                    print(name, os.strerror(e.errno))
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); print('SO_REUSEADDR allowed')
            print(os.getuid())
            """;
        var r = Via.Run(T, "run", "--dev", "up2", "--user", "root", "--", Clients.Python, "-c", program);
        output.WriteLine(r.Out + r.Err);
        Assert.Equal(0, r.Code);
        Assert.Equal(["SO_MARK Operation not permitted", "SO_BINDTODEVICE Operation not permitted",
            "SO_BINDTOIFINDEX Operation not permitted", "SO_REUSEADDR allowed", "0"], r.Out.Trim().Split('\n'));

        // Outside via, the same calls work: the refusal is via's guard, not this kernel.
        var plain = T.InHost([Clients.Python, "-c", program]);
        Assert.Contains("SO_MARK allowed", plain.Out);
    }

    [RootFact]
    public void An_unprivileged_program_cannot_leave_the_cgroup()
    {
        // via mounted cgroup2 in its state directory (STATE/cgroup2) in this (ip netns exec) mount namespace; the program sees it.
        string program = $$"""
            import os
            print('/{{fixture.State.Subtree}}/' in open('/proc/self/cgroup').read())
            for target in ('{{fixture.State.StateDirectory}}/cgroup2/cgroup.procs', '/sys/fs/cgroup/unified/cgroup.procs', '/sys/fs/cgroup/cgroup.procs'):
                if not os.path.exists(target): continue
                try:
                    open(target, 'w').write(str(os.getpid())); print('escaped via', target)
                except OSError as e:
                    print('refused', os.strerror(e.errno))
            print('/{{fixture.State.Subtree}}/' in open('/proc/self/cgroup').read())
            """;
        var r = Via.Run(T, "run", "--dev", "up2", "--user", "nobody", "--", Clients.Python, "-c", program);
        output.WriteLine(r.Out + r.Err);
        Assert.Equal(0, r.Code);
        var lines = r.Out.Trim().Split('\n');
        Assert.Equal("True", lines[0]);
        Assert.Contains(lines, l => l.StartsWith("refused", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith("escaped", StringComparison.Ordinal));
        Assert.Equal("True", lines[^1]);
    }
}
