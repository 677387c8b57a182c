using Via.Engine;
using Via.Kernel.Processes;
using Via.Mechanisms;
using Via.Planning;

namespace Via.Tests.Unit;

/// <summary>Which mechanism tags a program: the registry, 'auto', refusals; and what the engine reads of a program file.</summary>
public sealed class MechanismChoiceTests
{
    private static HostView Host() => PlanningTests.TypicalHost();

    private static readonly ProgramImage Dynamic = new("/usr/bin/curl", Static: false, SetId: false);

    [Fact]
    public void Every_registered_mechanism_has_a_unique_name_and_a_summary()
    {
        Assert.Equal(Registry.All.Count, Registry.All.Select(m => m.Name).Distinct().Count());
        Assert.All(Registry.All, m => Assert.False(string.IsNullOrWhiteSpace(m.Summary)));
        Assert.DoesNotContain(Registry.All, m => m.Name == MechanismChoice.Auto);
        Assert.Equal("cgroup", Registry.All[0].Name); // the default where it works
    }

    [Fact]
    public void Auto_takes_the_first_usable_mechanism_that_serves_the_program()
    {
        var (mechanism, why) = MechanismChoice.Choose(MechanismChoice.Auto, Host(), Dynamic);
        Assert.Equal("cgroup", mechanism.Name);
        Assert.StartsWith("auto: ", why);
    }

    [Fact]
    public void An_unknown_method_names_the_known_ones()
    {
        var e = Assert.Throws<PlanException>(() => MechanismChoice.Choose("ptrace", Host(), Dynamic));
        Assert.Contains("unknown method 'ptrace'", e.Message);
        Assert.Contains("auto, " + Registry.Names, e.Message);
    }

    [Fact]
    public void A_mechanism_that_refuses_the_program_says_why_and_auto_passes_it_by()
    {
        IReadOnlyList<IMechanism> candidates = [new Refusing(), Registry.Find("cgroup")!];
        var busybox = new ProgramImage("/bin/busybox", Static: true, SetId: false);
        var e = Assert.Throws<PlanException>(() => MechanismChoice.Choose("refusing", Host(), busybox, candidates));
        Assert.Equal("method refusing cannot run /bin/busybox: no loader", e.Message);
        var (chosen, why) = MechanismChoice.Choose(MechanismChoice.Auto, Host(), busybox, candidates);
        Assert.Equal("cgroup", chosen.Name);
        Assert.Contains("not refusing: no loader", why);
        Assert.Equal("refusing", MechanismChoice.Choose(MechanismChoice.Auto, Host(), Dynamic, candidates).Mechanism.Name);
    }

    [Fact]
    public void A_mechanism_that_does_not_work_here_is_refused_by_name_and_skipped_by_auto()
    {
        IReadOnlyList<IMechanism> candidates = [new Unusable(), Registry.Find("cgroup")!];
        var e = Assert.Throws<PlanException>(() => MechanismChoice.Choose("unusable", Host(), Dynamic, candidates));
        Assert.StartsWith("method unusable does not work on this host: kernel too old", e.Message);
        Assert.Equal("cgroup", MechanismChoice.Choose(MechanismChoice.Auto, Host(), Dynamic, candidates).Mechanism.Name);
        var none = Assert.Throws<PlanException>(() => MechanismChoice.Choose(MechanismChoice.Auto, Host(), Dynamic, [new Unusable()]));
        Assert.Contains("no mechanism can tag /usr/bin/curl on this host: unusable: kernel too old", none.Message);
    }

    [Fact]
    public void With_ip_auto_takes_a_mechanism_that_attaches_directly_and_another_named_one_is_refused()
    {
        IReadOnlyList<IMechanism> candidates = [Registry.Find("cgroup")!, new Attaching()];
        Assert.Equal("attaching", MechanismChoice.Choose(MechanismChoice.Auto, Host(), Dynamic, candidates, direct: true).Mechanism.Name);
        Assert.Equal("attaching", MechanismChoice.Choose("attaching", Host(), Dynamic, candidates, direct: true).Mechanism.Name);
        Assert.Equal("cgroup", MechanismChoice.Choose(MechanismChoice.Auto, Host(), Dynamic, candidates).Mechanism.Name);
        var e = Assert.Throws<PlanException>(() => MechanismChoice.Choose("cgroup", Host(), Dynamic, candidates, direct: true));
        Assert.StartsWith("--ip needs --method attaching: method cgroup has no network namespace", e.Message);
        Assert.True(Registry.Find("netns")!.AttachesDirectly);
        Assert.Equal(["netns"], Registry.All.Where(m => m.AttachesDirectly).Select(m => m.Name));
    }

    private sealed class Attaching : IMechanism
    {
        public string Name => "attaching";
        public string Summary => "a namespace of its own";
        public bool TagsAtCreation => false;
        public bool AttachesDirectly => true;
        public MechanismProbe Probe(HostView host) => new(true, "always");
        public IReadOnlyList<Via.Mechanisms.Changes.HostChange> Tag(TagRequest request) => [];
        public LaunchAdditions Launch(TagRequest request) => LaunchAdditions.None;
    }

    private sealed class Unusable : IMechanism
    {
        public string Name => "unusable";
        public string Summary => "never works";
        public bool TagsAtCreation => true;
        public MechanismProbe Probe(HostView host) => new(false, "kernel too old");
        public IReadOnlyList<Via.Mechanisms.Changes.HostChange> Tag(TagRequest request) => [];
        public LaunchAdditions Launch(TagRequest request) => LaunchAdditions.None;
    }

    private sealed class Refusing : IMechanism
    {
        public string Name => "refusing";
        public string Summary => "refuses static programs";
        public bool TagsAtCreation => true;
        public MechanismProbe Probe(HostView host) => new(true, "always");
        public string? Refuse(ProgramImage program) => program.Static ? "no loader" : null;
        public IReadOnlyList<Via.Mechanisms.Changes.HostChange> Tag(TagRequest request) => [];
        public LaunchAdditions Launch(TagRequest request) => LaunchAdditions.None;
    }

    [Theory]
    [InlineData("/bin/busybox", true)]       // busybox-static
    [InlineData("/usr/bin/python3", false)]  // dynamically linked
    [InlineData("/bin/sh", false)]
    public void A_static_executable_is_one_without_a_loader(string path, bool isStatic)
    {
        Executable.Inspect(path, out bool found, out bool setId);
        Assert.Equal(isStatic, found);
        Assert.False(setId);
    }

    [Fact]
    public void A_script_is_not_static_and_a_set_uid_file_is_seen()
    {
        string script = Path.Combine(Path.GetTempPath(), $"via-script-{Guid.NewGuid():N}");
        File.WriteAllText(script, "#!/bin/sh\nexit 0\n");
        try
        {
            File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.SetUser);
            Executable.Inspect(script, out bool isStatic, out bool setId);
            Assert.False(isStatic);
            Assert.True(setId);
        }
        finally
        {
            File.Delete(script);
        }
    }
}
