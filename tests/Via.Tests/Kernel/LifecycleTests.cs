using System.Diagnostics;
using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>Exit status, signals, and removal of everything via made once the route's last process exits.</summary>
public sealed class LifecycleTests(TopologyFixture<LifecycleTests> fixture, ITestOutputHelper output) : IClassFixture<TopologyFixture<LifecycleTests>>
{
    private Topology T => fixture.Topology;

    [RootFact]
    public void Everything_is_removed_after_the_program_exits()
    {
        var before = HostSnapshot.Take(T);
        var r = Via.Run(T, ["run", "--verbose", "--dev", "up2", "--", .. Clients.DotNet("tcp", Topology.Server4)]);
        output.WriteLine(r.Err);
        Assert.Equal(0, r.Code);
        Assert.Contains("ip rule add pref 12000 fwmark", r.Err); // it did set up a route...
        HostSnapshot.AssertUnchanged(before, T);              // ...and removed all of it
    }

    [RootFact]
    public void Exit_status_is_the_programs_own()
    {
        Assert.Equal(3, Via.Up2(T, "sh", "-c", "exit 3").Code);
        Assert.Equal(0, Via.Up2(T, "true").Code);
        Assert.Equal(128 + 15, Via.Up2(T, "sh", "-c", "kill -TERM $$").Code);
        Assert.Equal(128 + 9, Via.Up2(T, "sh", "-c", "kill -KILL $$").Code);
    }

    [RootFact]
    public void Missing_or_unrunnable_commands_get_127_and_126_and_change_nothing()
    {
        var before = HostSnapshot.Take(T);
        var missing = Via.Up2(T, "no-such-command-via-test");
        Assert.Equal(127, missing.Code);
        Assert.Contains("no-such-command-via-test: command not found", missing.Err);
        string plainFile = Path.GetTempFileName(); // mode 0600: not executable
        try
        {
            var notExecutable = Via.Up2(T, plainFile);
            Assert.Equal(126, notExecutable.Code);
            Assert.Contains(plainFile, notExecutable.Err);
        }
        finally
        {
            File.Delete(plainFile);
        }
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootTheory]
    [InlineData("TERM", 15)]
    [InlineData("INT", 2)]
    [InlineData("HUP", 1)]
    public void Signals_are_forwarded_to_the_program(string name, int number)
    {
        var before = HostSnapshot.Take(T);
        // The program reports the signal it got as its exit status (40 + N).
        string program = $"import signal, sys, time\nsignal.signal({number}, lambda *a: sys.exit(40 + {number}))\nprint('ready', flush=True)\ntime.sleep(30)\nsys.exit(1)";
        using var via = Via.Start(T, ["run", "--dev", "up2", "--", Clients.Python, "-c", program]);
        Assert.Equal("ready", via.StandardOutput.ReadLine());
        // ip netns exec execs via in place, so this pid is via's.
        Assert.Equal(0, Topology.Run("kill", [$"-{name}", via.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).Code);
        Assert.True(via.WaitForExit(20000), "via did not exit after the program got SIG" + name);
        Assert.Equal(40 + number, via.ExitCode);
        HostSnapshot.AssertUnchanged(before, T);
    }

    [RootFact]
    public void Ctrl_C_at_a_terminal_reaches_the_program_once()
    {
        // The program counts the SIGINTs it gets in one second after Ctrl-C and exits with that count.
        const string program = "import signal, sys, time\nn = [0]\nsignal.signal(2, lambda *a: n.__setitem__(0, n[0] + 1))\nprint('ready', flush=True)\nwhile n[0] == 0: time.sleep(0.01)\ntime.sleep(1)\nsys.exit(n[0])";
        // A pseudo-terminal whose foreground process group is via's, as in an interactive shell.
        string harness = $$"""
            import os, pty, sys, time
            pid, fd = pty.fork()
            if pid == 0:
                os.execv('{{ViaBinary.Path}}', ['via', 'run', '--dev', 'up2', '--', '{{Clients.Python}}', '-c', sys.argv[1]])
            out = b''
            while b'ready' not in out: out += os.read(fd, 1024)
            os.write(fd, b'\x03')
            while True:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:
                    break
                if not chunk: break
            _, status = os.waitpid(pid, 0)
            print(os.waitstatus_to_exitcode(status))
            """;
        var r = T.InHost([.. fixture.State.EnvPrefix, Clients.Python, "-c", harness, program], Via.Timeout);
        output.WriteLine(r.Out + r.Err);
        Assert.Equal(0, r.Code);
        Assert.Equal("1", r.Out.Trim());
    }

    [RootFact]
    public void A_daemonized_grandchild_stays_routed_and_the_route_goes_when_it_exits()
    {
        var before = HostSnapshot.Take(T);
        string outFile = Path.Combine(Path.GetTempPath(), $"via-daemon-{Guid.NewGuid():N}");
        try
        {
            string daemon = $"sleep 1; {string.Join(' ', Clients.DotNet("tcp", Topology.Server4))} > {outFile}";
            var r = Via.Up2(T, "sh", "-c", $"setsid sh -c '{daemon}' </dev/null >/dev/null 2>&1 & exit 0");
            Assert.Equal(0, r.Code); // via returns when its child exits...
            Assert.False(File.Exists(outFile) && File.ReadAllText(outFile).Length > 0, "the daemon should still be sleeping");
            // ...the daemon, still in the route's cgroup, goes out up2 a second later...
            Via.WaitUntil(() => File.Exists(outFile) && File.ReadAllText(outFile).EndsWith('\n'), "the daemon's answer", TimeSpan.FromSeconds(10));
            Assert.Equal("isp2 10.2.0.2", File.ReadAllText(outFile).Trim());
            // ...and once it has exited, the reaper removes the route.
            HostSnapshot.AssertUnchanged(before, T);
        }
        finally
        {
            File.Delete(outFile);
        }
    }
}
