using Via.Kernel;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Mechanisms.Changes;

namespace Via.Tests.Unit;

/// <summary>
/// The tests that set this process's environment (VIA_STATE_DIR, VIA_CONFIG): one at a time, even
/// where test classes run in parallel.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessEnvironment
{
    public const string Name = "process environment";
}

/// <summary>
/// Joining and leaving a shared route (RouteRegistry), on journals in a state directory of the
/// test's own (VIA_STATE_DIR): who stays a user, and what the last to leave gets. No root: the
/// routes have no kernel objects (their one change is a cgroup2 mount, whose undo does nothing),
/// and a route's processes are a directory with a cgroup.events file.
/// </summary>
[Collection(ProcessEnvironment.Name)]
public sealed class RouteRegistryTests : IDisposable
{
    private readonly string _state = Path.Combine(Path.GetTempPath(), $"via-registry-{Guid.NewGuid():N}");
    private readonly string? _previous = Environment.GetEnvironmentVariable("VIA_STATE_DIR");
    private readonly System.Diagnostics.Process _other;

    /// <summary>Another live process (a user other than this one), and one that is gone.</summary>
    private readonly ProcessIdentity _otherUser, _deadUser;

    public RouteRegistryTests()
    {
        Environment.SetEnvironmentVariable("VIA_STATE_DIR", _state);
        _other = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sleep", ["60"]))!;
        _otherUser = ProcessIdentity.Of(_other.Id) ?? throw new InvalidOperationException("sleep is gone");
        using var gone = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("true"))!;
        gone.WaitForExit();
        _deadUser = new ProcessIdentity(gone.Id, 1);
    }

    public void Dispose()
    {
        _other.Kill();
        _other.WaitForExit();
        _other.Dispose();
        Environment.SetEnvironmentVariable("VIA_STATE_DIR", _previous);
        if (Directory.Exists(_state)) Directory.Delete(_state, recursive: true);
    }

    private static ProcessIdentity Me => ProcessIdentity.Self;

    /// <summary>A route of this network namespace with the given users, its journal written.</summary>
    private static ActiveRoute Made(string? cgroup = null, bool down = false, params ProcessIdentity[] users)
    {
        var route = new ActiveRoute("t22000", "up2|", Namespaces.CurrentNetwork(), DateTimeOffset.UtcNow, "up2", null, 0x10000, 22000, "cgroup", cgroup,
            [.. users], down, [new MountCgroup2("/nonexistent/via-test-cgroup2")]);
        Journal.Write(route);
        return route;
    }

    private static ActiveRoute Read() => Journal.Read(Journal.PathOf("t22000"));

    /// <summary>A stand-in for a route's cgroup: cgroup.events saying whether processes are in it.</summary>
    private string Cgroup(bool populated)
    {
        string dir = Path.Combine(_state, "cgroup-t22000");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "cgroup.events"), $"populated {(populated ? 1 : 0)}\nfrozen 0\n");
        return dir;
    }

    [Fact]
    public void Joining_adds_the_user_once_and_forgets_users_that_died()
    {
        var route = Made(users: [_deadUser, Me, _otherUser]);
        var joined = RouteRegistry.Join(route, Me);
        Assert.Equal([_otherUser, Me], joined.Users);
        Assert.Equal(joined.Users, Read().Users);
    }

    [Fact]
    public void A_live_route_with_the_same_key_is_shared_and_one_taken_down_or_abandoned_is_not()
    {
        Made(users: [_otherUser]);
        Assert.Equal("t22000", RouteRegistry.FindShared("up2|")?.Id);
        Assert.Null(RouteRegistry.FindShared("up1|"));

        Made(down: true, users: [_otherUser]);
        Assert.Null(RouteRegistry.FindShared("up2|"));

        // No live user, but processes in it (daemons): still shared.
        Made(cgroup: Cgroup(populated: true), users: [_deadUser]);
        Assert.Equal("t22000", RouteRegistry.FindShared("up2|")?.Id);
        // Neither: abandoned, never joined (its objects may be gone).
        Made(cgroup: Cgroup(populated: false), users: [_deadUser]);
        Assert.Null(RouteRegistry.FindShared("up2|"));
        Assert.True(RouteRegistry.IsAbandoned(Read()));
    }

    [Fact]
    public void Leaving_while_another_user_lives_keeps_the_route_for_it()
    {
        Made(users: [Me, _otherUser, _deadUser]);
        var (outcome, problems) = RouteRegistry.Leave("t22000", Me);
        Assert.Equal(RouteRegistry.Outcome.InUse, outcome);
        Assert.Empty(problems);
        Assert.Equal([_otherUser], Read().Users);
    }

    [Fact]
    public void The_last_user_leaving_with_processes_left_keeps_the_route_for_a_reaper()
    {
        Made(cgroup: Cgroup(populated: true), users: [Me, _deadUser]);
        var (outcome, problems) = RouteRegistry.Leave("t22000", Me);
        Assert.Equal(RouteRegistry.Outcome.ProcessesRemain, outcome);
        Assert.Empty(problems);
        Assert.Empty(Read().Users);
    }

    [Fact]
    public void A_membership_that_cannot_be_read_counts_as_processes_left()
    {
        string notACgroup = Path.Combine(_state, "not-a-cgroup"); // no cgroup.events
        Directory.CreateDirectory(notACgroup);
        Made(cgroup: notACgroup, users: [Me]);
        Assert.Equal(RouteRegistry.Outcome.ProcessesRemain, RouteRegistry.Leave("t22000", Me).Outcome);
        Assert.True(File.Exists(Journal.PathOf("t22000")));
    }

    [Fact]
    public void The_last_user_leaving_an_empty_route_removes_it()
    {
        Made(cgroup: Cgroup(populated: false), users: [Me]);
        int undone = 0;
        var (outcome, problems) = RouteRegistry.Leave("t22000", Me, () => undone++);
        Assert.Equal(RouteRegistry.Outcome.Removed, outcome);
        Assert.Empty(problems);
        Assert.Equal(1, undone);
        Assert.False(File.Exists(Journal.PathOf("t22000")));
    }

    [Fact]
    public void Leaving_a_route_another_via_removed_is_gone()
    {
        var route = Made(users: [Me]);
        Journal.Remove(route.Id);
        var (outcome, problems) = RouteRegistry.Leave("t22000", Me, remembered: route);
        Assert.Equal(RouteRegistry.Outcome.Gone, outcome);
        Assert.Empty(problems);
    }

    [Fact]
    public void With_the_state_directory_wiped_the_last_user_removes_the_route_it_remembers_and_says_so()
    {
        var route = Made(users: [Me]);
        Directory.Delete(_state, recursive: true);
        var (outcome, problems) = RouteRegistry.Leave("t22000", Me, remembered: route);
        Assert.Equal(RouteRegistry.Outcome.Removed, outcome);
        Assert.Equal($"via's state directory {Journal.RoutesDirectory} was removed while route t22000 was in use; removing the route from what this via remembers", Assert.Single(problems));
        // Without what it remembers, there is nothing it could undo.
        Assert.Equal(RouteRegistry.Outcome.Gone, RouteRegistry.Leave("t22000", Me).Outcome);
    }
}
