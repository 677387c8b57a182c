using System.Net;
using System.Net.Sockets;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Changes;

namespace Via.Tests.Unit;

/// <summary>The journal's hand-written JSON: every change kind survives a round trip, and a damaged file is refused with its name.</summary>
public sealed class JournalCodecTests
{
    private static ActiveRoute Sample() => new(
        "t22000", "net:[1]|cgroup|eth1|10.2.0.1|10.2.0.2|||", "net:[4026531840]", DateTimeOffset.Parse("2026-11-25T07:00:00Z", System.Globalization.CultureInfo.InvariantCulture),
        "eth1", "10.2.0.1", 0x10000, 22000, "cgroup", "/sys/fs/cgroup/via/t22000", [new(41, 1234567), new(42, 99)], false,
        [
            new MountCgroup2("/run/via/cgroup2"),
            new CreateCgroup("/sys/fs/cgroup/via/t22000"),
            new AttachSocketMark("/sys/fs/cgroup/via/t22000", 0x10000),
            new AttachSetsockoptGuard("/sys/fs/cgroup/via/t22000", 3),
            new Via.Mechanisms.Guard.AttachEgressGuard("/sys/fs/cgroup/via/t22000", 3, "eth1"),
            new AddRoute(new Route(AddressFamily.InterNetwork, 22000, RouteType.Unicast, Gateway: IPAddress.Parse("10.2.0.1"), OutputLink: 3,
                PreferredSource: IPAddress.Parse("10.2.0.2"), Protocol: 86), "eth1"),
            new AddRoute(new Route(AddressFamily.InterNetworkV6, 22000, RouteType.Unicast, IPAddress.Parse("2001:db8:2::"), 64, OutputLink: 3, Metric: 256, Protocol: 86, Scope: 253), "eth1"),
            new AddRoute(new Route(AddressFamily.InterNetworkV6, 22000, RouteType.Unreachable, Metric: 4278198272, Protocol: 86)),
            new AddRule(new Rule(AddressFamily.InterNetwork, 12000, 22000, Mark: 0x10000, MarkMask: 0xff0000, Protocol: 86)),
            new AddRule(new Rule(AddressFamily.InterNetworkV6, 12000, 22000, Source: IPAddress.Parse("2001:db8:2::2"), SourceLength: 128, Protocol: 86)),
            new AddRule(new Rule(AddressFamily.InterNetwork, 12001, 0, RuleAction.Unreachable)),
            new AddRule(new Rule(AddressFamily.InterNetworkV6, 12000, 22000, Mark: 0x10000, MarkMask: 0xff0000, Protocol: 86,
                Destination: IPAddress.Parse("2001:db8::"), DestinationLength: 32, IpProtocol: 6, DestinationPorts: new PortRange(8000, 8080))),
            new AttachRuleProgram("1a2b3", "0badcafe", 0x10000, 0xfedcba9876543210),
        ])
    {
        Attached = [new(new(4242, 777), "/user.slice/session-3.scope")],
        AttachedCgroups = [new("/system.slice/syncthing.service", "syncthing.service"), new("/my.slice/job", null)],
        Rules =
        [
            new(new RuleSelector(SelectorKind.User, "alice"), "cli", 1000),
            new(new RuleSelector(SelectorKind.Comm, "curl"), "config", null),
            new(new RuleSelector(SelectorKind.Dport, "tcp:3306"), "cli", null),
        ],
    };

    [Fact]
    public void Every_field_and_change_survives_a_round_trip()
    {
        var route = Sample();
        var back = JournalCodec.Decode(JournalCodec.Encode(route), "test");
        // Records compare lists by reference: compare the scalars with the same lists, then the lists.
        List<Via.Kernel.Processes.ProcessIdentity> users = [];
        List<HostChange> changes = [];
        List<AttachedProcess> attached = [];
        List<AttachedCgroup> cgroups = [];
        List<Via.Mechanisms.Rules.StandingRule> rules = [];
        Assert.Equal(route with { Users = users, Changes = changes, Launch = LaunchAdditions.None, Attached = attached, AttachedCgroups = cgroups, Rules = rules },
            back with { Users = users, Changes = changes, Launch = LaunchAdditions.None, Attached = attached, AttachedCgroups = cgroups, Rules = rules });
        Assert.Equal(route.Rules, back.Rules);
        Assert.Equal(route.Users, back.Users);
        Assert.Equal(route.Attached, back.Attached);
        Assert.Equal(route.AttachedCgroups, back.AttachedCgroups);
        Assert.Equal(route.Changes, back.Changes);
        Assert.Equal(route.Changes.Select(c => c.Command), back.Changes.Select(c => c.Command));
    }

    [Fact]
    public void The_launch_additions_survive_a_round_trip()
    {
        var route = Sample() with { Launch = new LaunchAdditions(new Dictionary<string, string> { ["LD_PRELOAD"] = "/opt/via/via_preload.so", ["VIA_X"] = "" }, SeccompListener: true) };
        var back = JournalCodec.Decode(JournalCodec.Encode(route), "test");
        Assert.True(back.Launch.SeccompListener);
        Assert.Equal(route.Launch.Environment.OrderBy(e => e.Key), back.Launch.Environment.OrderBy(e => e.Key));
    }

#pragma warning disable IL2026, IL2075 // reflection over via's own types, in a test (never trimmed)
    [Fact]
    public void Every_kind_of_change_has_one_codec_and_names_itself()
    {
        // Every HostChange type of via's assemblies is read back by a codec of its own kind: the
        // engine's (ChangeKinds.Core) or its mechanism's (IMechanism.ChangeKinds).
        var types = typeof(HostChange).Assembly.GetTypes().Where(t => t.IsSubclassOf(typeof(HostChange)) && !t.IsAbstract).ToList();
        var codecs = ChangeKinds.Core.Concat(Registry.All.SelectMany(m => m.ChangeKinds)).ToList();
        Assert.Equal(codecs.Count, codecs.Select(c => c.Kind).Distinct().Count());
        foreach (var type in types)
        {
            var field = type.GetField("Codec", System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static);
            Assert.True(field is not null, $"{type.Name} has no Codec");
            Assert.Contains((ChangeCodec)field!.GetValue(null)!, codecs);
        }
        Assert.All(Sample().Changes, c => Assert.Equal(c.Kind, codecs.Single(k => k.Kind == c.Kind).Read(Reencode(c)).Kind));
    }

#pragma warning restore IL2026, IL2075

    private static System.Text.Json.JsonElement Reencode(HostChange change)
    {
        var buffer = new MemoryStream();
        using (var w = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("kind", change.Kind);
            change.Write(w);
            w.WriteEndObject();
        }
        return System.Text.Json.JsonDocument.Parse(buffer.ToArray()).RootElement;
    }

    [Fact]
    public void The_request_state_and_repairs_survive_a_round_trip()
    {
        var route = Sample() with { RequestedGateway = "10.2.0.1", RequestedSource = "10.2.0.2", RequestedTable = 22000, Owner = RouteOwner.ByGid(100), Health = RouteHealth.Waiting, Waiting = "interface 'eth1' is down", Repairs = 3 };
        var back = JournalCodec.Decode(JournalCodec.Encode(route), "test");
        Assert.Equal(("10.2.0.1", "10.2.0.2", (uint?)22000, RouteOwner.ByGid(100)), (back.RequestedGateway, back.RequestedSource, back.RequestedTable, back.Owner));
        Assert.Equal((RouteHealth.Waiting, "interface 'eth1' is down", 3), (back.Health, back.Waiting, back.Repairs));
    }

    [Fact]
    public void A_named_standing_route_keeps_its_name_and_definition_and_an_unnamed_one_has_none()
    {
        var route = Sample() with { Name = "work", Standing = true, Definition = "dev=eth1 gateway=- source=- method=auto table=-" };
        var back = JournalCodec.Decode(JournalCodec.Encode(route), "test");
        Assert.Equal(("work", true, route.Definition), (back.Name, back.Standing, back.Definition));
        var plain = JournalCodec.Decode(JournalCodec.Encode(Sample()), "test");
        Assert.Equal(((string?)null, false, (string?)null), (plain.Name, plain.Standing, plain.Definition));
    }

    [Fact]
    public void A_journal_of_an_earlier_via_reads_as_a_route_up_and_never_repaired()
    {
        using var doc = System.Text.Json.JsonDocument.Parse(JournalCodec.Encode(Sample()));
        var old = new MemoryStream();
        using (var w = new System.Text.Json.Utf8JsonWriter(old))
        {
            w.WriteStartObject();
            foreach (var p in doc.RootElement.EnumerateObject().Where(p => p.Name is not ("state" or "repairs"))) p.WriteTo(w);
            w.WriteEndObject();
        }
        var back = JournalCodec.Decode(old.ToArray(), "old");
        Assert.Equal((RouteHealth.Up, (string?)null, 0, (string?)null, RouteOwner.ByCgroup), (back.Health, back.Waiting, back.Repairs, back.RequestedGateway, back.Owner));
    }

    [Fact]
    public void The_file_is_readable_json()
    {
        string text = System.Text.Encoding.UTF8.GetString(JournalCodec.Encode(Sample()));
        Assert.Contains("\"kind\": \"sock-mark\"", text);
        Assert.Contains("\"gateway\": \"10.2.0.1\"", text);
        Assert.Contains("\"users\": [", text);
    }

    [Theory]
    [InlineData("")]
    [InlineData("{}")]
    [InlineData("{\"id\": 3}")]
    [InlineData("not json")]
    public void A_damaged_journal_is_refused_with_its_name(string text)
    {
        var e = Assert.Throws<InvalidDataException>(() => JournalCodec.Decode(System.Text.Encoding.UTF8.GetBytes(text), "/run/via/routes/t1.json"));
        Assert.Contains("/run/via/routes/t1.json", e.Message);
    }

    [Fact]
    public void An_unknown_change_kind_is_refused()
    {
        string text = System.Text.Encoding.UTF8.GetString(JournalCodec.Encode(Sample())).Replace("\"sock-mark\"", "\"teleport\"", StringComparison.Ordinal);
        var e = Assert.Throws<InvalidDataException>(() => JournalCodec.Decode(System.Text.Encoding.UTF8.GetBytes(text), "j"));
        Assert.Contains("teleport", e.Message);
    }
}
