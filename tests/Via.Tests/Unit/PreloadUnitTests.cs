using System.Text.Json;
using Via.Mechanisms;
using Via.Mechanisms.Preload;

namespace Via.Tests.Unit;

/// <summary>The preload mechanism's pure parts: its journal kind, its refusals, what it asks for. No root.</summary>
public sealed class PreloadUnitTests
{
    private static readonly HostView Host = new([], [], [], [], ["/sys/fs/cgroup"]);

    private static TagRequest Request(string cgroup) => new("t23400", 0x2a, Host, 3, cgroup);

    [Fact]
    public void The_tagger_change_survives_the_journal_and_names_its_route()
    {
        var change = new StartTagger("t23400", StartTagger.AddressOf("t23400"), "/via/t23400", "/sys/fs/cgroup/via/t23400", 0x2a);
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("kind", change.Kind);
            change.Write(w);
            w.WriteEndObject();
        }
        using var doc = JsonDocument.Parse(buffer.ToArray());
        Assert.Equal(change, ChangeKinds.Read(doc.RootElement));
        Assert.Equal("t23400", StartTagger.RouteOf(change.Address));
        Assert.Null(StartTagger.RouteOf("someone-else/t23400"));
        Assert.Equal("via-tagger --name via-tagger/t23400 --cgroup /via/t23400 --cgroup-dir /sys/fs/cgroup/via/t23400 --mark 0x2a", change.Command);
    }

    [Theory]
    [InlineData("/sys/fs/cgroup/via/t23400", "/via/t23400")]
    [InlineData("/run/via/cgroup2/via/t23400", "/via/t23400")] // via's private mount inside ip netns exec
    public void The_tagger_is_told_the_cgroup_as_proc_pid_cgroup_names_it(string cgroup, string below)
    {
        var tagger = Assert.IsType<StartTagger>(Assert.Single(new PreloadMechanism().Tag(Request(cgroup))));
        Assert.Equal(below, tagger.Cgroup);
        Assert.Equal(cgroup, tagger.CgroupDirectory);
        Assert.Equal(0x2au, tagger.Mark);
    }

    [Fact]
    public void Each_launch_gets_the_library_first_and_the_taggers_address()
    {
        var env = new PreloadMechanism().Launch(Request("/sys/fs/cgroup/via/t23400")).Environment;
        Assert.StartsWith(PreloadMechanism.LibraryPath, env["LD_PRELOAD"]);
        Assert.Equal("via-tagger/t23400", env[PreloadMechanism.TaggerVariable]);
    }

    [Fact]
    public void Static_and_set_id_programs_are_refused_in_one_line()
    {
        var m = new PreloadMechanism();
        Assert.Contains("statically linked", m.Refuse(new ProgramImage("/bin/busybox", Static: true, SetId: false)));
        Assert.Contains("set-user-ID", m.Refuse(new ProgramImage("/usr/bin/passwd", Static: false, SetId: true)));
        Assert.Null(m.Refuse(new ProgramImage("/usr/bin/curl", Static: false, SetId: false)));
        Assert.DoesNotContain("\n", m.Refuse(new ProgramImage("/bin/busybox", Static: true, SetId: false))!, StringComparison.Ordinal);
    }

    [Fact]
    public void A_go_program_is_refused_it_makes_its_sockets_without_libc()
    {
        // A stand-in: /bin/true with the section every Go binary has (objcopy, from binutils, which the C toolchain brings).
        string fake = Path.Combine(Path.GetTempPath(), $"via-fake-go-{Guid.NewGuid():N}");
        string empty = fake + ".section";
        File.WriteAllBytes(empty, [0]);
        try
        {
            var r = global::Via.Cli.Commands.Demo.Topology.Run("objcopy", ["--add-section", ".go.buildinfo=" + empty, "/bin/true", fake]);
            Assert.True(r.Code == 0, r.Err);
            Assert.True(ProgramFile.IsGo(fake));
            Assert.False(ProgramFile.IsGo("/bin/true"));
            Assert.False(ProgramFile.IsGo("/usr/bin/python3"));
            Assert.Contains("Go program", new PreloadMechanism().Refuse(new ProgramImage(fake, Static: false, SetId: false)));
        }
        finally
        {
            File.Delete(fake);
            File.Delete(empty);
        }
    }
}
