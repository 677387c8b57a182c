using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Via.Kernel.Netlink;
using Xunit;

namespace Via.Tests.Unit;

/// <summary>
/// rtnetlink requests against bytes written out by hand from the uapi headers:
/// <code>
///   struct nlmsghdr { __u32 nlmsg_len; __u16 nlmsg_type; __u16 nlmsg_flags; __u32 nlmsg_seq; __u32 nlmsg_pid; }   16 bytes
///   struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags; }                     12 bytes
///   struct fib_rule_hdr { u8 family, dst_len, src_len, tos, table, res1, res2, action; u32 flags; }                 12 bytes
///   struct rtattr / nlattr { u16 len; u16 type; } payload padded to 4 (NLA_ALIGNTO); len excludes the padding
///   RTM_NEWROUTE 24, RTM_DELROUTE 25, RTM_NEWRULE 32, RTM_DELRULE 33
///   NLM_F_REQUEST 0x1, NLM_F_ACK 0x4, NLM_F_EXCL 0x200, NLM_F_CREATE 0x400
///   RTA_DST 1, RTA_OIF 4, RTA_GATEWAY 5, RTA_PRIORITY 6, RTA_PREFSRC 7, RTA_TABLE 15
///   FRA_DST 1, FRA_SRC 2, FRA_PRIORITY 6, FRA_FWMARK 10, FRA_TABLE 15, FRA_FWMASK 16, FRA_PROTOCOL 21 (u8),
///   FRA_IP_PROTO 22 (u8), FRA_DPORT_RANGE 24 (struct fib_rule_port_range { __u16 start; __u16 end; }, host order)
///   RT_TABLE_COMPAT 252 (in the 8-bit table field when the table id is above 255)
///   RTN_UNICAST 1, RTN_UNREACHABLE 7; FR_ACT_TO_TBL 1, FR_ACT_UNREACHABLE 7; AF_INET 2, AF_INET6 10
/// </code>
/// The order of attributes is the implementation's choice (the kernel accepts any); these tests
/// pin it so that any change to the wire format is deliberate.
/// </summary>
public class NetlinkEncodingTests
{
    private const ushort NewRoute = 24, DelRoute = 25, NewRule = 32, DelRule = 33;
    private const ushort CreateExcl = 0x400 | 0x200;

    [Fact]
    public void Fwmark_rule_is_encoded_like_ip_rule_add()
    {
        // ip rule add pref 12000 fwmark 0x10000/0xff0000 lookup 22000 proto 86
        var rule = new Rule(AddressFamily.InterNetwork, 12000, 22000, Mark: 0x10000, MarkMask: 0xff0000, Protocol: 86);

        byte[] msg = Rtnl.RuleMessage(NewRule, CreateExcl, rule).Build(0x01020304);

        string expected =
            // nlmsghdr: len 68, RTM_NEWRULE, REQUEST|ACK|EXCL|CREATE = 0x605, seq, pid 0
            "44000000 2000 0506 04030201 00000000" +
            // fib_rule_hdr: AF_INET, dst_len 0, src_len 0, tos 0, table RT_TABLE_COMPAT, res1, res2, FR_ACT_TO_TBL, flags 0
            "02 00 00 00 fc 00 00 01 00000000" +
            "0800 0600 e02e0000" +   // FRA_PRIORITY 12000
            "0800 0f00 f0550000" +   // FRA_TABLE 22000
            "0800 0a00 00000100" +   // FRA_FWMARK 0x10000
            "0800 1000 0000ff00" +   // FRA_FWMASK 0xff0000
            "0500 1500 56 000000";   // FRA_PROTOCOL 86, one byte + 3 bytes padding
        Assert.Equal(Bytes(expected), Hex(msg));
    }

    [Fact]
    public void Source_rule_v6_carries_the_address_and_prefix_length()
    {
        // ip -6 rule add pref 12000 from 2001:db8::2/128 lookup 22000 proto 86
        var rule = new Rule(AddressFamily.InterNetworkV6, 12000, 22000, Source: IPAddress.Parse("2001:db8::2"), SourceLength: 128, Protocol: 86);

        byte[] msg = Rtnl.RuleMessage(NewRule, CreateExcl, rule).Build(9);

        string expected =
            "48000000 2000 0506 09000000 00000000" +        // len 72
            "0a 00 80 00 fc 00 00 01 00000000" +            // AF_INET6, src_len 128
            "0800 0600 e02e0000" +                          // FRA_PRIORITY
            "0800 0f00 f0550000" +                          // FRA_TABLE
            "1400 0200 20010db8000000000000000000000002" +  // FRA_SRC, 16 bytes
            "0500 1500 56 000000";                          // FRA_PROTOCOL
        Assert.Equal(Bytes(expected), Hex(msg));
    }

    [Fact]
    public void Rule_with_a_small_table_uses_the_header_field_and_delete_has_no_create_flags()
    {
        // ip rule del pref 100 lookup 100
        var rule = new Rule(AddressFamily.InterNetwork, 100, 100);

        byte[] msg = Rtnl.RuleMessage(DelRule, 0, rule).Build(1);

        string expected =
            "2c000000 2100 0500 01000000 00000000" +   // len 44, RTM_DELRULE, REQUEST|ACK
            "02 00 00 00 64 00 00 01 00000000" +       // table 100 fits the 8-bit field
            "0800 0600 64000000" +                     // FRA_PRIORITY 100
            "0800 0f00 64000000";                      // FRA_TABLE 100 (still sent; harmless)
        Assert.Equal(Bytes(expected), Hex(msg));
    }

    [Fact]
    public void Unreachable_rule_has_no_table_attribute()
    {
        var rule = new Rule(AddressFamily.InterNetworkV6, 12001, 22000, RuleAction.Unreachable);

        byte[] msg = Rtnl.RuleMessage(NewRule, CreateExcl, rule).Build(2);

        string expected =
            "24000000 2000 0506 02000000 00000000" +   // len 36
            "0a 00 00 00 fc 00 00 07 00000000" +       // FR_ACT_UNREACHABLE
            "0800 0600 e12e0000";                      // FRA_PRIORITY 12001 only
        Assert.Equal(Bytes(expected), Hex(msg));
    }

    [Fact]
    public void Destination_rule_carries_the_prefix_in_dst_len_the_ip_protocol_and_the_port_range()
    {
        // ip rule add pref 12000 to 10.20.0.0/16 fwmark 0x10000/0xff0000 ipproto tcp dport 8000-8080 lookup 22000 proto 86
        var rule = new Rule(AddressFamily.InterNetwork, 12000, 22000, Mark: 0x10000, MarkMask: 0xff0000, Protocol: 86,
            Destination: IPAddress.Parse("10.20.0.0"), DestinationLength: 16, IpProtocol: 6, DestinationPorts: new PortRange(8000, 8080));

        byte[] msg = Rtnl.RuleMessage(NewRule, CreateExcl, rule).Build(3);

        string expected =
            "5c000000 2000 0506 03000000 00000000" +   // len 92
            "02 10 00 00 fc 00 00 01 00000000" +       // AF_INET, dst_len 16
            "0800 0600 e02e0000" +                     // FRA_PRIORITY 12000
            "0800 0f00 f0550000" +                     // FRA_TABLE 22000
            "0800 0a00 00000100" +                     // FRA_FWMARK
            "0800 1000 0000ff00" +                     // FRA_FWMASK
            "0800 0100 0a140000" +                     // FRA_DST 10.20.0.0
            "0500 1500 56 000000" +                    // FRA_PROTOCOL 86
            "0500 1600 06 000000" +                    // FRA_IP_PROTO tcp
            "0800 1800 401f 901f";                     // FRA_DPORT_RANGE 8000 (0x1f40), 8080 (0x1f90), little-endian host
        Assert.Equal(Bytes(expected), Hex(msg));
    }

    [Fact]
    public void A_destination_rule_reads_back_as_it_was_written()
    {
        var rule = new Rule(AddressFamily.InterNetworkV6, 12000, 22000, Mark: 0x10000, MarkMask: 0xff0000, Protocol: 86,
            Destination: IPAddress.Parse("2001:db8::"), DestinationLength: 32, IpProtocol: 17, DestinationPorts: new PortRange(53, 53));
        byte[] bytes = Rtnl.RuleMessage(NewRule, CreateExcl, rule).Build(7);

        var back = Rtnl.ParseRule(new NetlinkMessage(MemoryMarshal.Read<NlMsgHdr>(bytes), bytes.AsSpan(16)));

        Assert.Equal(rule, back);
        Assert.Equal(4, back.SelectorCount);
        Assert.False(back.OtherSelectors);
    }

    [Fact]
    public void A_port_range_the_kernel_refuses_is_not_valid()
    {
        Assert.True(new PortRange(1, 65534).IsValid);
        Assert.False(new PortRange(1, 65535).IsValid);   // fib_rule_port_range_valid: end < 0xffff
        Assert.False(new PortRange(0, 80).IsValid);
        Assert.False(new PortRange(90, 80).IsValid);
        Assert.Equal("8000-8080", new PortRange(8000, 8080).ToString());
        Assert.Equal("53", new PortRange(53, 53).ToString());
    }

    [Fact]
    public void Default_route_via_gateway_is_encoded_like_ip_route_add()
    {
        // ip route add default via 10.2.0.1 dev <ifindex 3> src 10.2.0.2 table 22000 proto 86
        var route = new Route(AddressFamily.InterNetwork, 22000, RouteType.Unicast, Gateway: IPAddress.Parse("10.2.0.1"),
            OutputLink: 3, PreferredSource: IPAddress.Parse("10.2.0.2"), Protocol: 86);

        byte[] msg = Rtnl.RouteMessage(NewRoute, CreateExcl, route).Build(0xdeadbeef);

        string expected =
            "3c000000 1800 0506 efbeadde 00000000" +  // len 60, RTM_NEWROUTE
            // rtmsg: AF_INET, dst_len 0, src_len 0, tos 0, table COMPAT, proto 86, scope universe, RTN_UNICAST, flags 0
            "02 00 00 00 fc 56 00 01 00000000" +
            "0800 0f00 f0550000" +   // RTA_TABLE 22000
            "0800 0500 0a020001" +   // RTA_GATEWAY 10.2.0.1 (network order)
            "0800 0400 03000000" +   // RTA_OIF 3
            "0800 0700 0a020002";    // RTA_PREFSRC 10.2.0.2
        Assert.Equal(Bytes(expected), Hex(msg));
    }

    [Fact]
    public void Unreachable_v6_default_with_metric()
    {
        // ip -6 route add unreachable default metric 4278198272 table 22000 proto 86
        var route = new Route(AddressFamily.InterNetworkV6, 22000, RouteType.Unreachable, Metric: 4278198272, Protocol: 86);

        byte[] msg = Rtnl.RouteMessage(NewRoute, CreateExcl, route).Build(5);

        string expected =
            "2c000000 1800 0506 05000000 00000000" +  // len 44
            "0a 00 00 00 fc 56 00 07 00000000" +      // AF_INET6, RTN_UNREACHABLE
            "0800 0f00 f0550000" +                    // RTA_TABLE 22000
            "0800 0600 002000ff";                     // RTA_PRIORITY 0xff002000
        Assert.Equal(Bytes(expected), Hex(msg));
    }

    [Fact]
    public void Connected_prefix_route_v6_with_link_scope_and_delete()
    {
        // ip -6 route del 2001:db8:2::/64 dev <ifindex 7> table 200 (scope link)
        var route = new Route(AddressFamily.InterNetworkV6, 200, Destination: IPAddress.Parse("2001:db8:2::"), DestinationLength: 64,
            OutputLink: 7, Scope: 253);

        byte[] msg = Rtnl.RouteMessage(DelRoute, 0, route).Build(3);

        string expected =
            "40000000 1900 0500 03000000 00000000" +          // len 64 = 16 + 12 + 8 + 20 + 8, RTM_DELROUTE, REQUEST|ACK
            "0a 40 00 00 c8 00 fd 01 00000000" +              // dst_len 64, table 200, scope link 253
            "0800 0f00 c8000000" +                            // RTA_TABLE 200
            "1400 0100 20010db8000200000000000000000000" +    // RTA_DST
            "0800 0400 07000000";                             // RTA_OIF 7
        Assert.Equal(Bytes(expected), Hex(msg));
    }

    [Fact]
    public void Table_boundary_255_fits_and_256_needs_compat()
    {
        var r255 = Rtnl.RouteMessage(NewRoute, 0, new Route(AddressFamily.InterNetwork, 255)).Build(1);
        var r256 = Rtnl.RouteMessage(NewRoute, 0, new Route(AddressFamily.InterNetwork, 256)).Build(1);

        Assert.Equal(255, r255[16 + 4]);
        Assert.Equal(252, r256[16 + 4]);
        Assert.Equal(256u, BinaryPrimitives.ReadUInt32LittleEndian(r256.AsSpan(16 + 12 + 4)));
    }

    [Fact]
    public void String_attribute_is_nul_terminated_and_padded_and_length_excludes_padding()
    {
        var b = new NetlinkMessageBuilder(Nl.RTM_GETLINK, Nl.NLM_F_REQUEST).Struct(new IfInfoMsg { Index = 4 }).String(Nl.IFLA_IFNAME, "eth1");

        byte[] msg = b.Build(11);

        string expected =
            "2c000000 1200 0100 0b000000 00000000" +   // len 44 = 16 + 16 + 12, RTM_GETLINK
            "00 00 0000 04000000 00000000 00000000" +  // ifinfomsg, index 4
            "0900 0300 65746831 00 000000";            // IFLA_IFNAME len 9 ("eth1\0"), padded to 12
        Assert.Equal(Bytes(expected), Hex(msg));
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 4)]
    [InlineData(4, 4)]
    [InlineData(5, 8)]
    [InlineData(9, 12)]
    [InlineData(16, 16)]
    public void Align_rounds_up_to_four(int length, int aligned)
    {
        Assert.Equal(aligned, NetlinkMessageBuilder.Align(length));
    }

    [Fact]
    public void Builder_grows_past_its_initial_buffer()
    {
        var b = new NetlinkMessageBuilder(Nl.RTM_NEWROUTE, Nl.NLM_F_REQUEST);
        for (ushort i = 0; i < 100; i++) b.U32(i, i);

        byte[] msg = b.Build(1);

        Assert.Equal(16 + 100 * 8, msg.Length);
        Assert.Equal((uint)msg.Length, BinaryPrimitives.ReadUInt32LittleEndian(msg));
        Assert.Equal(99u, BinaryPrimitives.ReadUInt32LittleEndian(msg.AsSpan(msg.Length - 4)));
    }

    [Fact]
    public void Route_message_round_trips_through_the_parser()
    {
        var route = new Route(AddressFamily.InterNetwork, 22000, RouteType.Unicast, Destination: IPAddress.Parse("10.2.0.0"),
            DestinationLength: 24, Gateway: IPAddress.Parse("10.2.0.1"), OutputLink: 3, PreferredSource: IPAddress.Parse("10.2.0.2"),
            Metric: 100, Protocol: 86);
        byte[] bytes = Rtnl.RouteMessage(NewRoute, CreateExcl, route).Build(42);

        var header = MemoryMarshal.Read<NlMsgHdr>(bytes);
        var message = new NetlinkMessage(header, bytes.AsSpan(16, (int)header.Length - 16));
        var rt = message.Struct<RtMsg>();
        var attrs = message.Attributes(Marshal.SizeOf<RtMsg>());

        Assert.Equal((uint)bytes.Length, header.Length);
        Assert.Equal(Nl.RTM_NEWROUTE, header.Type);
        Assert.Equal(42u, header.Sequence);
        Assert.Equal(2, rt.Family);
        Assert.Equal(24, rt.DstLen);
        Assert.Equal(86, rt.Protocol);
        Assert.Equal((byte)RouteType.Unicast, rt.Type);
        Assert.Equal([Nl.RTA_DST, Nl.RTA_OIF, Nl.RTA_GATEWAY, Nl.RTA_PRIORITY, Nl.RTA_PREFSRC, Nl.RTA_TABLE], attrs.Keys.Order());
        Assert.Equal(22000u, NetlinkMessage.U32(attrs[Nl.RTA_TABLE]));
        Assert.Equal(IPAddress.Parse("10.2.0.0"), NetlinkMessage.Ip(attrs[Nl.RTA_DST]));
        Assert.Equal(IPAddress.Parse("10.2.0.1"), NetlinkMessage.Ip(attrs[Nl.RTA_GATEWAY]));
        Assert.Equal(3u, NetlinkMessage.U32(attrs[Nl.RTA_OIF]));
        Assert.Equal(IPAddress.Parse("10.2.0.2"), NetlinkMessage.Ip(attrs[Nl.RTA_PREFSRC]));
        Assert.Equal(100u, NetlinkMessage.U32(attrs[Nl.RTA_PRIORITY]));
    }

    [Fact]
    public void Rule_message_round_trips_through_the_parser_including_a_padded_u8()
    {
        var rule = new Rule(AddressFamily.InterNetworkV6, 12000, 22000, Mark: 0x30000, MarkMask: 0xff0000,
            Source: IPAddress.Parse("2001:db8::2"), SourceLength: 128, Protocol: 86);
        byte[] bytes = Rtnl.RuleMessage(NewRule, CreateExcl, rule).Build(7);

        var header = MemoryMarshal.Read<NlMsgHdr>(bytes);
        var message = new NetlinkMessage(header, bytes.AsSpan(16));
        var h = message.Struct<FibRuleHdr>();
        var attrs = message.Attributes(Marshal.SizeOf<FibRuleHdr>());

        Assert.Equal(10, h.Family);
        Assert.Equal(128, h.SrcLen);
        Assert.Equal(Nl.RT_TABLE_COMPAT, h.Table);
        Assert.Equal((byte)RuleAction.ToTable, h.Action);
        Assert.Equal(12000u, NetlinkMessage.U32(attrs[Nl.FRA_PRIORITY]));
        Assert.Equal(22000u, NetlinkMessage.U32(attrs[Nl.FRA_TABLE]));
        Assert.Equal(0x30000u, NetlinkMessage.U32(attrs[Nl.FRA_FWMARK]));
        Assert.Equal(0xff0000u, NetlinkMessage.U32(attrs[Nl.FRA_FWMASK]));
        Assert.Equal(IPAddress.Parse("2001:db8::2"), NetlinkMessage.Ip(attrs[Nl.FRA_SRC]));
        Assert.Equal(new byte[] { 86 }, attrs[Nl.FRA_PROTOCOL]);
    }

    [Fact]
    public void Parser_masks_the_nested_and_byteorder_flags_off_the_attribute_type()
    {
        // NLA_F_NESTED 0x8000 | NLA_F_NET_BYTEORDER 0x4000 on type 3
        byte[] payload = Convert.FromHexString("0000000000000000" + "0800 03c0 01020304".Replace(" ", ""));
        var message = new NetlinkMessage(default, payload);

        var attrs = message.Attributes(8);

        Assert.Equal(new byte[] { 1, 2, 3, 4 }, attrs[3]);
    }

    [Fact]
    public void Parser_stops_at_a_truncated_attribute()
    {
        // one good attribute, then one that claims 12 bytes but has only 8
        byte[] payload = Convert.FromHexString("0800 0100 0a000001 0c00 0200 01020304".Replace(" ", ""));
        var message = new NetlinkMessage(default, payload);

        var attrs = message.Attributes(0);

        Assert.Equal([(ushort)1], attrs.Keys);
    }

    [Fact]
    public void A_multipath_route_is_read_as_one_route_per_next_hop()
    {
        // RTA_MULTIPATH payload: two struct rtnexthop {len, flags, hops, ifindex}, each followed by RTA_GATEWAY.
        byte[] multipath = Convert.FromHexString(
            "1000" + "00" + "00" + "03000000" + "0800" + "0500" + "0a020001" +   // len 16, ifindex 3, via 10.2.0.1
            "1000" + "00" + "01" + "02000000" + "0800" + "0500" + "0a010001");   // len 16, ifindex 2, via 10.1.0.1
        var route = new Route(AddressFamily.InterNetwork, 201, Protocol: 3);

        var hops = Rtnl.NextHops(route, multipath);

        Assert.Equal(2, hops.Count);
        Assert.Equal((3, IPAddress.Parse("10.2.0.1")), (hops[0].OutputLink, hops[0].Gateway));
        Assert.Equal((2, IPAddress.Parse("10.1.0.1")), (hops[1].OutputLink, hops[1].Gateway));
        Assert.All(hops, h => Assert.Equal(201u, h.Table));
        Assert.Empty(Rtnl.NextHops(route, Convert.FromHexString("0400")));   // truncated: nothing, no exception
    }

    private static string Bytes(string hex) => Convert.ToHexStringLower(Convert.FromHexString(hex.Replace(" ", "")));

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);
}
