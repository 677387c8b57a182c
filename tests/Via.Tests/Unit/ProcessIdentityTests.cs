using Via.Kernel.Processes;

namespace Via.Tests.Unit;

/// <summary>A route's users are named by pid and start time, so a recycled pid does not keep a dead via's route alive.</summary>
public sealed class ProcessIdentityTests
{
    [Fact]
    public void This_process_is_alive_and_a_recycled_pid_is_not_it()
    {
        var self = ProcessIdentity.Self;
        Assert.Equal(Environment.ProcessId, self.Pid);
        Assert.True(self.StartTime > 0);
        Assert.True(self.IsAlive);
        Assert.False((self with { StartTime = self.StartTime + 1 }).IsAlive);
    }

    [Fact]
    public void Another_process_is_named_while_it_lives_and_not_after()
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sleep", ["5"]))!;
        try
        {
            // (Process.Start returns once the child is made: its /proc entry is there.)
            var id = ProcessIdentity.Of(p.Id);
            Assert.NotNull(id);
            Assert.True(id.Value.StartTime >= ProcessIdentity.Self.StartTime);
            Assert.True(id.Value.IsAlive);
        }
        finally
        {
            p.Kill();
            p.WaitForExit();
        }
        Assert.Null(ProcessIdentity.Of(p.Id));
    }
}
