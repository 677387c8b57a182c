using System.Net;
using System.Net.Sockets;
using Via.Cli.Commands.Doctor;
using Via.Kernel.Netlink;
using Via.Mechanisms;
using Via.Mechanisms.Changes;
using Via.Planning;
using Xunit;

namespace Via.Tests.Unit;

/// <summary>
/// The mark mask and rule priority via chooses (<see cref="NumberChoice"/>), on the rule sets the
/// common programs leave on a host (their documented layouts), built by hand.
/// </summary>
public class NumberChoiceTests
{
    private const AddressFamily V4 = AddressFamily.InterNetwork, V6 = AddressFamily.InterNetworkV6;

    private static readonly Rule[] Standard =
    [
        new(V4, 0, 255), new(V4, 32766, 254), new(V4, 32767, 253),
        new(V6, 0, 255), new(V6, 32766, 254),
    ];

    // tailscale util/linuxfw: the same four rules in both families.
    private static IEnumerable<Rule> Tailscale(AddressFamily f) =>
    [
        new(f, 5210, 254, Mark: 0x80000, MarkMask: 0xff0000),
        new(f, 5230, 253, Mark: 0x80000, MarkMask: 0xff0000),
        new(f, 5250, 0, RuleAction.Unreachable, Mark: 0x80000, MarkMask: 0xff0000),
        new(f, 5270, 52),
    ];

    // wg-quick: 'not fwmark 51820 lookup 51820' and 'lookup main suppress_prefixlength 0' (kernel stores mask 0xffffffff).
    private static IEnumerable<Rule> WgQuick(AddressFamily f) =>
    [
        new(f, 32764, 254, SuppressPrefixLength: 0),
        new(f, 32765, 51820, Mark: 0xca6c, MarkMask: uint.MaxValue, Invert: true),
    ];

    private static HostView Host(params IEnumerable<Rule>[] rules) =>
        new([], [], [], [.. Standard, .. rules.SelectMany(r => r)], ["/sys/fs/cgroup"]);

    private static NumberChoice Choose(HostView host, Settings? settings = null, IEnumerable<ActiveRoute>? active = null) =>
        NumberChoice.Choose(settings ?? Settings.Default, host, active ?? [], "net:[1]");

    private static void AssertSafe(NumberChoice c, HostView host)
    {
        uint m = c.Space.MarkMask;
        Assert.True(m != 0 && ((m >> System.Numerics.BitOperations.TrailingZeroCount(m)) & ((m >> System.Numerics.BitOperations.TrailingZeroCount(m)) + 1)) == 0, $"0x{m:x} is not contiguous");
        foreach (var r in host.Rules.Where(r => r.Protocol != Planner.Protocol && r.Mark is not null && (r.MarkMask ?? uint.MaxValue) != uint.MaxValue))
            Assert.True(((r.MarkMask!.Value | r.Mark!.Value) & m) == 0, $"mask 0x{m:x} overlaps rule pref {r.Priority}");
        // No foreign rule before via's priority can take a packet marked under the mask.
        Assert.DoesNotContain(host.Rules, r => r.Protocol != Planner.Protocol && r.Priority > 0 && r.Priority < c.Space.Priority && r.Table != 255 && NumberChoice.CouldTake(r, m));
    }

    [Fact]
    public void A_bare_host_gets_eight_bits_outside_every_documented_field_and_priority_12000()
    {
        var host = Host();
        var c = Choose(host);

        Assert.Equal(0x000000ffu, c.Space.MarkMask);
        Assert.Equal(12000u, c.Space.Priority);
        Assert.All(KnownProgram.All, p => Assert.Equal(0u, p.Field & c.Space.MarkMask));
        Assert.Contains("bits common programs document", c.MaskReason);
        Assert.Empty(c.Warnings);
    }

    [Fact]
    public void Tailscale_its_bits_are_avoided_and_via_goes_just_before_lookup_52()
    {
        var host = Host(Tailscale(V4), Tailscale(V6));
        var c = Choose(host);

        AssertSafe(c, host);
        Assert.Equal(5269u, c.Space.Priority);
        Assert.Contains("pref 5270 lookup 52, Tailscale's", c.PriorityReason);
    }

    [Fact]
    public void A_taken_priority_just_before_the_catching_rule_is_skipped()
    {
        var host = Host(Tailscale(V4), [new Rule(V4, 5269, 254, Mark: 0x1000000, MarkMask: 0x1000000)]);

        Assert.Equal(5268u, Choose(host).Space.Priority);
    }

    [Fact]
    public void WireGuard_full_tunnel_rules_come_after_12000_and_its_mark_value_is_never_handed_out()
    {
        var host = Host(WgQuick(V4), WgQuick(V6));
        var c = Choose(host);

        AssertSafe(c, host);
        Assert.Equal(12000u, c.Space.Priority);
        Assert.Contains("0x6c (WireGuard (wg-quick))", c.MaskReason);
        // Marks up to 0x6b taken: the next is 0x6d, never wg-quick's 0xca6c & 0xff.
        var active = Enumerable.Range(1, 0x6b).Select(i => Journaled((uint)i, 30000 + (uint)i)).ToList();
        Assert.Equal(0x6du, Allocator.Allocate(host, active, c.Space).Mark);
    }

    [Fact]
    public void A_not_fwmark_rule_before_12000_takes_via_packets_so_via_goes_before_it()
    {
        var host = Host([new Rule(V4, 1000, 51820, Mark: 0xca6c, MarkMask: uint.MaxValue, Invert: true)]);

        Assert.Equal(999u, Choose(host).Space.Priority);
    }

    [Fact]
    public void Kube_proxy_and_Calico_marks_on_the_host_are_avoided()
    {
        var host = Host([
            new Rule(V4, 100, 300, Mark: 0x4000, MarkMask: 0x4000),
            new Rule(V4, 101, 301, Mark: 0x8000, MarkMask: 0x8000),
            new Rule(V4, 102, 302, Mark: 0x10000, MarkMask: 0xffff0000)]);
        var c = Choose(host);

        AssertSafe(c, host);
        Assert.Equal(0u, c.Space.MarkMask & 0xffffc000);
        Assert.Equal(12000u, c.Space.Priority); // their rules match only their own marks
    }

    [Fact]
    public void Cilium_moves_the_local_lookup_and_via_stays_after_it()
    {
        // Cilium: 'fwmark 0x200/0xf00 lookup 2004' at 9, the local lookup moved from 0 to 100.
        var host = new HostView([], [], [], [
            new Rule(V4, 9, 2004, Mark: 0x200, MarkMask: 0xf00), new Rule(V4, 100, 255), new Rule(V4, 32766, 254),
            new Rule(V4, 150, 400)], ["/sys/fs/cgroup"]);
        var c = Choose(host);

        Assert.Equal(0u, c.Space.MarkMask & 0xf00);
        Assert.Equal(149u, c.Space.Priority); // before 'lookup 400' at 150, after local at 100
    }

    [Fact]
    public void Mullvad_exact_mark_only_excludes_its_value()
    {
        var host = Host([new Rule(V4, 100, 1836018789, Mark: 0x6d6f6c65, MarkMask: uint.MaxValue)]);
        var c = Choose(host);

        Assert.Equal(8, System.Numerics.BitOperations.PopCount(c.Space.MarkMask));
        Assert.Contains("0x65 (Mullvad)", c.MaskReason);
    }

    [Fact]
    public void Host_marks_that_leave_few_bits_give_a_narrower_mask_and_say_which_documented_bits_it_overlaps()
    {
        // Only 0x0000000f is outside this host's fields and the documented ones... and then not even that.
        var host = Host([new Rule(V4, 100, 300, Mark: 0, MarkMask: 0xfff0)]);
        var c = Choose(host);
        AssertSafe(c, host);
        Assert.Equal(0x0000000fu, c.Space.MarkMask);

        var crowded = Host([new Rule(V4, 100, 300, Mark: 0, MarkMask: 0x0000ffff)]);
        var c2 = Choose(crowded);
        AssertSafe(c2, crowded);
        Assert.NotEmpty(c2.Warnings);
        Assert.Contains("documented mark bits of", c2.Warnings[0]);
    }

    [Fact]
    public void A_host_whose_rules_use_every_bit_is_refused_naming_the_programs()
    {
        var host = Host(Tailscale(V4), [new Rule(V4, 100, 300, Mark: 0, MarkMask: 0xff00ffff)]);

        var e = Assert.Throws<PlanException>(() => Choose(host));

        Assert.Contains("no bit of the socket mark is free", e.Message);
        Assert.Contains("Tailscale (pref 5210, 5230, 5250)", e.Message);
        Assert.Contains("an unknown program (pref 100 fwmark 0x0/0xff00ffff lookup 300)", e.Message);
    }

    [Fact]
    public void A_configured_mask_wins_and_is_refused_only_when_it_overlaps_a_rule()
    {
        var host = Host(Tailscale(V4));
        var configured = Settings.Default with { MarkMask = 0x0000ff00, Source = "/x/via.conf" };
        var c = Choose(host, configured);
        Assert.Equal(0x0000ff00u, c.Space.MarkMask);
        Assert.Contains("configured in /x/via.conf", c.MaskReason);

        var e = Assert.Throws<PlanException>(() => Choose(host, configured with { MarkMask = 0x00ff0000 }));
        Assert.Contains("mark-mask 0x00ff0000", e.Message);
        Assert.Contains("Tailscale", e.Message);
    }

    [Fact]
    public void A_configured_priority_wins_with_a_warning_when_a_rule_before_it_takes_via_packets()
    {
        var host = Host(Tailscale(V4));
        var c = Choose(host, Settings.Default with { Priority = 12000 });

        Assert.Equal(12000u, c.Space.Priority);
        Assert.Contains("pref 5270 lookup 52, Tailscale's comes before", Assert.Single(c.Warnings));
    }

    [Fact]
    public void Existing_via_routes_keep_their_mask_while_it_is_safe()
    {
        var viaRule = new Rule(V4, 12000, 22000, Mark: 0x10000, MarkMask: 0xff0000, Protocol: Planner.Protocol);
        Assert.Equal(0xff0000u, Choose(Host([viaRule])).Space.MarkMask);
        // Same from the journal alone (a route of another namespace).
        Assert.Equal(0xff0000u, Choose(Host(), active: [Journaled(0x10000, 22000) with { Changes = [new AddRule(viaRule)] }]).Space.MarkMask);

        // A route of another network namespace does not count: marks do not cross namespaces.
        Assert.Equal(0xffu, Choose(Host(), active: [Journaled(0x10000, 22000) with { NetworkNamespace = "net:[2]", Changes = [new AddRule(viaRule)] }]).Space.MarkMask);

        // Tailscale started since: the old mask is unsafe; the new one avoids it and Tailscale's.
        var host = Host([viaRule], Tailscale(V4));
        var c = Choose(host);
        Assert.Equal(0u, c.Space.MarkMask & 0xff0000);
        AssertSafe(c, host);
    }

    [Fact]
    public void Via_rules_made_before_a_catching_rule_appeared_are_named()
    {
        var old = new Rule(V4, 12000, 22000, Mark: 0x1, MarkMask: 0xff, Protocol: Planner.Protocol);
        var host = Host([old], Tailscale(V4));
        var c = Choose(host);

        Assert.Equal(0xffu, c.Space.MarkMask);    // kept: safe beside Tailscale's bits
        Assert.Equal(5269u, c.Space.Priority);    // but new rules go before 'lookup 52'
        Assert.Equal([old], c.Overtaken(host));
        Assert.Contains("table(s) 22000 come after rule pref 5270 lookup 52, Tailscale's", c.OvertakenWarning(host));
        Assert.Null(Choose(Host([old])).OvertakenWarning(Host([old])));
    }

    [Fact]
    public void Via_own_rules_never_count_as_catching_rules()
    {
        var host = Host([new Rule(V4, 100, 22000, Source: IPAddress.Parse("10.2.0.2"), SourceLength: 32, Protocol: Planner.Protocol)]);

        Assert.Equal(12000u, Choose(host).Space.Priority);
    }

    [Theory]
    [InlineData("plain lookup", true)]
    [InlineData("fwmark of another field", false)]
    [InlineData("fwmark 0 under another field", true)]
    [InlineData("not fwmark", true)]
    [InlineData("iif eth0", false)]
    [InlineData("iif lo", true)]
    [InlineData("not iif eth0", true)]
    [InlineData("to a prefix", true)]
    [InlineData("not plain", false)]
    public void Which_rules_could_take_a_via_packet(string what, bool expected)
    {
        var r = what switch
        {
            "plain lookup" => new Rule(V4, 10, 52),
            "fwmark of another field" => new Rule(V4, 10, 52, Mark: 0x80000, MarkMask: 0xff0000),
            "fwmark 0 under another field" => new Rule(V4, 10, 52, Mark: 0, MarkMask: 0xff0000),
            "not fwmark" => new Rule(V4, 10, 51820, Mark: 0xca6c, MarkMask: uint.MaxValue, Invert: true),
            "iif eth0" => new Rule(V4, 10, 52, InputInterface: "eth0"),
            "iif lo" => new Rule(V4, 10, 52, InputInterface: "lo"),
            "not iif eth0" => new Rule(V4, 10, 52, InputInterface: "eth0", Invert: true),
            "to a prefix" => new Rule(V4, 10, 52, Destination: IPAddress.Parse("100.64.0.0"), DestinationLength: 10),
            "not plain" => new Rule(V4, 10, 52, Invert: true),
            _ => throw new ArgumentException(what),
        };
        Assert.Equal(expected, NumberChoice.CouldTake(r, 0xff));
    }

    [Fact]
    public void Widest_free_run_prefers_eight_high_bits()
    {
        Assert.Equal(0xff000000u, NumberChoice.Widest(0, 1));
        Assert.Equal(0x00ff0000u, NumberChoice.Widest(0xff000000, 1));
        Assert.Equal(0x7u, NumberChoice.Widest(0xfffffff8, 1));
        Assert.Null(NumberChoice.Widest(0xfffffff8, 4));
        Assert.Null(NumberChoice.Widest(uint.MaxValue, 1));
    }

    [Fact]
    public void Networkd_setting_defaults_to_yes_and_the_last_file_wins()
    {
        Assert.Equal((true, (string?)null), NetworkDaemons.ForeignRulesSetting([]));
        Assert.Equal((false, "/etc/systemd/networkd.conf.d/via.conf"), NetworkDaemons.ForeignRulesSetting([
            ("/etc/systemd/networkd.conf", "[Network]\n#ManageForeignRoutingPolicyRules=no\n"),
            ("/etc/systemd/networkd.conf.d/via.conf", NetworkDaemons.DropIn)]));
        Assert.Equal((true, "/etc/systemd/networkd.conf.d/z.conf"), NetworkDaemons.ForeignRulesSetting([
            ("/etc/systemd/networkd.conf.d/via.conf", NetworkDaemons.DropIn),
            ("/etc/systemd/networkd.conf.d/z.conf", "[Network]\nManageForeignRoutingPolicyRules = yes\n")]));
        // Another section's key does not count.
        Assert.Equal((true, (string?)null), NetworkDaemons.ForeignRulesSetting([("/etc/systemd/networkd.conf", "[DHCPv4]\nManageForeignRoutingPolicyRules=no\n")]));
    }

    private static ActiveRoute Journaled(uint mark, uint table) =>
        new("old", "key", "net:[1]", DateTimeOffset.UnixEpoch, "eth1", null, mark, table, "cgroup", null, [new(1, 0)], false, []);
}

/// <summary>Marks read from nftables' JSON (the output of 'nft -j list ruleset', as nftables 1.0.6 prints it).</summary>
public class FirewallMarksTests
{
    private const string Ruleset = """
        {"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "ts", "handle": 1}},
        {"rule": {"family": "inet", "table": "ts", "chain": "out", "handle": 2, "expr": [{"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"|": [{"&": [{"meta": {"key": "mark"}}, 4278517759]}, 262144]}}}]}},
        {"rule": {"family": "inet", "table": "ts", "chain": "out", "handle": 3, "expr": [{"match": {"op": "==", "left": {"&": [{"meta": {"key": "mark"}}, 16711680]}, "right": 524288}}, {"accept": null}]}},
        {"rule": {"family": "inet", "table": "ts", "chain": "out", "handle": 4, "expr": [{"mangle": {"key": {"meta": {"key": "mark"}}, "value": 1}}]}},
        {"rule": {"family": "inet", "table": "ts", "chain": "out", "handle": 5, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 51820}}, {"accept": null}]}},
        {"rule": {"family": "inet", "table": "ts", "chain": "out", "handle": 6, "expr": [{"match": {"op": "==", "left": {"ct": {"key": "mark"}}, "right": 3905}}, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 1836018789}}]}},
        {"rule": {"family": "inet", "table": "ts", "chain": "out", "handle": 7, "expr": [{"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"ct": {"key": "mark"}}}}]}},
        {"rule": {"family": "inet", "table": "ts", "chain": "out", "handle": 8, "expr": [{"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"|": [{"meta": {"key": "mark"}}, 16384]}}}]}},
        {"rule": {"family": "ip", "table": "via", "chain": "out", "handle": 9, "expr": [{"mangle": {"key": {"meta": {"key": "mark"}}, "value": 255}}]}}]}
        """;

    [Fact]
    public void Sets_and_matches_of_the_meta_mark_are_found()
    {
        var marks = FirewallMarks.Parse(Ruleset);

        Assert.Equal(
        [
            new(0x00ff0000, null, "nftables table inet ts chain out"),  // mark and 0xff00ffff or 0x40000 (nft folds it to & 0xff04ffff | 0x40000)
            new(0x00ff0000, null, "nftables table inet ts chain out"),  // mark and 0xff0000 == 0x80000
            new(0, 1, "nftables table inet ts chain out"),               // mark set 1
            new(0, 0xca6c, "nftables table inet ts chain out"),          // mark 51820
            new(0, 0x6d6f6c65, "nftables table inet ts chain out"),      // mark set 0x6d6f6c65 (the ct mark match is not a socket mark)
            new(0x4000, null, "nftables table inet ts chain out"),      // mark set mark or 0x4000
        ], marks); // 'mark set ct mark' cannot be read; via's own table is skipped
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("""{"nftables": 3}""")]
    public void Nothing_readable_gives_nothing(string? json) => Assert.Empty(FirewallMarks.Parse(json));

    [Fact]
    public void Firewall_fields_are_avoided_like_rules()
    {
        var host = new HostView([], [], [], [], ["/sys/fs/cgroup"], FirewallMarks: [new(0x000000f0, null, "nftables table ip x chain y")]);

        var c = NumberChoice.Choose(Settings.Default, host, [], "net:[1]");

        Assert.Equal(0u, c.Space.MarkMask & 0xf0);
        Assert.Contains("nftables table ip x chain y", c.MaskReason);
        var e = Assert.Throws<PlanException>(() => NumberChoice.Choose(Settings.Default with { MarkMask = 0xff }, host, [], "net:[1]"));
        Assert.Contains("nftables table ip x chain y (bits 0x000000f0)", e.Message);
    }
}
