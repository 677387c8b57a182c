using Via.Mechanisms;
using Via.Mechanisms.Cgroup; // CgroupPaths

namespace Via.Tests.Unit;

/// <summary>
/// VIA_CGROUP_SUBTREE (with VIA_STATE_DIR): a via apart from every other, whose gc owns its subtree.
/// Sets this process's environment, so it runs in the one non-parallel collection.
/// </summary>
[Collection(ProcessEnvironment.Name)]
public sealed class OwnSubtreeTests : IDisposable
{
    private readonly string? _state = Environment.GetEnvironmentVariable("VIA_STATE_DIR");
    private readonly string? _subtree = Environment.GetEnvironmentVariable("VIA_CGROUP_SUBTREE");

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("VIA_STATE_DIR", _state);
        Environment.SetEnvironmentVariable("VIA_CGROUP_SUBTREE", _subtree);
    }

    private static void Set(string? state, string? subtree)
    {
        Environment.SetEnvironmentVariable("VIA_STATE_DIR", state);
        Environment.SetEnvironmentVariable("VIA_CGROUP_SUBTREE", subtree);
    }

    [Fact]
    public void By_default_via_uses_its_subtree_and_run_via_and_owns_the_subtree()
    {
        Set(null, null);
        Assert.Equal("via", RouteCgroups.Subtree);
        Assert.Null(RouteCgroups.OwnSubtree);
        Assert.Equal("/run/via/cgroup2", RouteCgroups.PrivateMount);
        Assert.Equal("/run/via/net_cls", Via.Mechanisms.Netcls.NetclsMechanism.PrivateMount);
        Assert.True(Journal.OwnsCgroupSubtree);
    }

    [Fact]
    public void Another_state_directory_alone_shares_the_via_subtree_and_does_not_own_it()
    {
        Set("/run/via-elsewhere", null);
        Assert.Equal("via", RouteCgroups.Subtree);
        Assert.Equal("/run/via-elsewhere/cgroup2", RouteCgroups.PrivateMount);
        Assert.Equal("/run/via-elsewhere/net_cls", Via.Mechanisms.Netcls.NetclsMechanism.PrivateMount);
        Assert.False(Journal.OwnsCgroupSubtree);
    }

    [Fact]
    public void A_subtree_of_its_own_is_used_and_owned()
    {
        Set("/run/via-test-x", "via-test-x");
        Assert.Equal("via-test-x", RouteCgroups.Subtree);
        Assert.True(Journal.OwnsCgroupSubtree);
        // A recorded cgroup is found again under this mount namespace's cgroup2 by its path below the subtree.
        string? root = CgroupPaths.FindForReading();
        Assert.Equal(root is null ? null : root + "/via-test-x/t22000", CgroupPaths.TryResolve("/run/via-test-x/cgroup2/via-test-x/t22000", mayMount: false));
    }

    [Theory]
    [InlineData("a/b")]
    [InlineData("../via")]
    [InlineData(".hidden")]
    public void A_subtree_that_is_not_one_directory_name_is_refused(string name)
    {
        Set("/run/via-test-x", name);
        var e = Assert.Throws<InvalidOperationException>(() => RouteCgroups.Subtree);
        Assert.Contains($"VIA_CGROUP_SUBTREE '{name}' must be one directory name", e.Message);
    }
}
