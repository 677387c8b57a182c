using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Via.Kernel.Interop;

namespace Via.Kernel.Netlink;

/// <summary>
/// A NETLINK_ROUTE socket in the calling thread's network namespace, with symmetric
/// Add/Delete/List for links, addresses, routes and rules (vishvananda/netlink's Handle).
/// </summary>
public sealed unsafe partial class Rtnl : IDisposable, IRtnlBatcher
{
    private readonly SafeFd _socket;
    private uint _sequence = (uint)Environment.TickCount;
    private readonly byte[] _receive = new byte[1 << 16];

    private readonly TimeSpan _receiveTimeout;

    private Rtnl(SafeFd socket, TimeSpan receiveTimeout)
    {
        _socket = socket;
        _receiveTimeout = receiveTimeout;
    }

    /// <summary>
    /// How long a receive waits for the kernel's answer. The kernel answers every request at once;
    /// a socket that stays silent (a lost reply, a bug of ours) must end in an error, not a via
    /// that hangs while holding the global lock.
    /// </summary>
    public static readonly TimeSpan DefaultReceiveTimeout = TimeSpan.FromSeconds(10);

    public static Rtnl Open() => Open(DefaultReceiveTimeout);

    public static Rtnl Open(TimeSpan receiveTimeout)
    {
        var fd = SafeFd.FromResult(Libc.socket(Nl.AF_NETLINK, Nl.SOCK_RAW | Nl.SOCK_CLOEXEC, Nl.NETLINK_ROUTE), "socket", "AF_NETLINK/NETLINK_ROUTE");
        var addr = new SockaddrNl { Family = Nl.AF_NETLINK };
        if (Libc.bind(fd.Value, &addr, (uint)sizeof(SockaddrNl)) < 0)
        {
            var error = Errno.Last("bind", "netlink socket");
            fd.Dispose();
            throw error;
        }
        int one = 1; // extended acks: the kernel says which attribute it refused
        Libc.setsockopt(fd.Value, Nl.SOL_NETLINK, Nl.NETLINK_EXT_ACK, &one, sizeof(int));
        long* timeval = stackalloc long[2]; // struct timeval { time_t tv_sec; suseconds_t tv_usec; }
        timeval[0] = (long)receiveTimeout.TotalSeconds;
        timeval[1] = receiveTimeout.Milliseconds * 1000L;
        if (Libc.setsockopt(fd.Value, Libc.SOL_SOCKET, Libc.SO_RCVTIMEO, timeval, 2 * sizeof(long)) < 0)
        {
            var error = Errno.Last("setsockopt SO_RCVTIMEO", "netlink socket");
            fd.Dispose();
            throw error;
        }
        return new Rtnl(fd, receiveTimeout);
    }

    public void Dispose() => _socket.Dispose();

    // ---- links and addresses -------------------------------------------------------------

    /// <summary>ip link show.</summary>
    public List<Link> Links()
    {
        var links = new List<Link>();
        Dump(new NetlinkMessageBuilder(Nl.RTM_GETLINK, Nl.NLM_F_REQUEST | Nl.NLM_F_DUMP).Struct(new IfInfoMsg()), "ip link show", (in NetlinkMessage m) =>
        {
            if (m.Header.Type != Nl.RTM_NEWLINK) return;
            var info = m.Struct<IfInfoMsg>();
            var attrs = m.Attributes(sizeof(IfInfoMsg));
            links.Add(new Link(info.Index, attrs.TryGetValue(Nl.IFLA_IFNAME, out var n) ? NetlinkMessage.Str(n) : $"if{info.Index}", info.Flags, info.Type));
        });
        return links;
    }

    /// <summary>ip addr show.</summary>
    public List<InterfaceAddress> Addresses()
    {
        var addresses = new List<InterfaceAddress>();
        Dump(new NetlinkMessageBuilder(Nl.RTM_GETADDR, Nl.NLM_F_REQUEST | Nl.NLM_F_DUMP).Struct(new IfAddrMsg()), "ip addr show", (in NetlinkMessage m) =>
        {
            if (m.Header.Type != Nl.RTM_NEWADDR) return;
            var msg = m.Struct<IfAddrMsg>();
            var attrs = m.Attributes(sizeof(IfAddrMsg));
            // IFA_LOCAL is this end; IFA_ADDRESS is the peer on point-to-point links (and equal to it otherwise).
            attrs.TryGetValue(Nl.IFA_LOCAL, out var local);
            attrs.TryGetValue(Nl.IFA_ADDRESS, out var address);
            var mine = local ?? address;
            if (mine is null) return;
            IPAddress? peer = local is not null && address is not null && !local.AsSpan().SequenceEqual(address) ? NetlinkMessage.Ip(address) : null;
            addresses.Add(new InterfaceAddress((int)msg.Index, NetlinkMessage.Ip(mine), msg.PrefixLen, msg.Scope, peer));
        });
        return addresses;
    }

    // ---- routes --------------------------------------------------------------------------

    /// <summary>ip [-6] route show table all. A route with several next hops (RTA_MULTIPATH) appears once per next hop.</summary>
    public List<Route> Routes(AddressFamily family)
    {
        var routes = new List<Route>();
        var request = new NetlinkMessageBuilder(Nl.RTM_GETROUTE, Nl.NLM_F_REQUEST | Nl.NLM_F_DUMP)
            .Struct(new RtMsg { Family = NetlinkMessage.Family(family) });
        Dump(request, "ip route show table all", (in NetlinkMessage m) =>
        {
            if (m.Header.Type != Nl.RTM_NEWROUTE) return;
            var rt = m.Struct<RtMsg>();
            var a = m.Attributes(sizeof(RtMsg));
            var route = new Route(
                NetlinkMessage.Family(rt.Family),
                a.TryGetValue(Nl.RTA_TABLE, out var t) ? NetlinkMessage.U32(t) : rt.Table,
                (RouteType)rt.Type,
                a.TryGetValue(Nl.RTA_DST, out var d) ? NetlinkMessage.Ip(d) : null,
                rt.DstLen,
                a.TryGetValue(Nl.RTA_GATEWAY, out var g) ? NetlinkMessage.Ip(g) : null,
                a.TryGetValue(Nl.RTA_OIF, out var o) ? (int)NetlinkMessage.U32(o) : 0,
                a.TryGetValue(Nl.RTA_PREFSRC, out var s) ? NetlinkMessage.Ip(s) : null,
                a.TryGetValue(Nl.RTA_PRIORITY, out var p) ? NetlinkMessage.U32(p) : 0,
                rt.Protocol,
                rt.Scope);
            if (a.TryGetValue(Nl.RTA_MULTIPATH, out var multipath)) routes.AddRange(NextHops(route, multipath));
            else routes.Add(route);
        });
        return routes;
    }

    /// <summary>One route per next hop of RTA_MULTIPATH: a list of struct rtnexthop, each with its own attributes.</summary>
    internal static List<Route> NextHops(Route route, ReadOnlySpan<byte> multipath)
    {
        var hops = new List<Route>();
        while (multipath.Length >= sizeof(RtNextHop))
        {
            var hop = MemoryMarshal.Read<RtNextHop>(multipath);
            if (hop.Length < sizeof(RtNextHop) || hop.Length > multipath.Length) break;
            var attrs = NetlinkMessage.ParseAttributes(multipath[sizeof(RtNextHop)..hop.Length]);
            hops.Add(route with
            {
                OutputLink = hop.IfIndex,
                Gateway = attrs.TryGetValue(Nl.RTA_GATEWAY, out var g) ? NetlinkMessage.Ip(g) : null,
            });
            multipath = multipath[Math.Min(NetlinkMessageBuilder.Align(hop.Length), multipath.Length)..];
        }
        return hops;
    }

    /// <summary>ip route add ... (fails with EEXIST if the same route is there).</summary>
    public void Add(Route route) => Execute(AddRequest(route));

    /// <summary>ip route del ...; false when no such route existed.</summary>
    public bool Delete(Route route) => Execute(DeleteRequest(route));

    public static RtnlRequest AddRequest(Route route) =>
        new(RouteMessage(Nl.RTM_NEWROUTE, Nl.NLM_F_CREATE | Nl.NLM_F_EXCL, route), "ip route add", Describe(route), []);

    public static RtnlRequest DeleteRequest(Route route) =>
        new(RouteMessage(Nl.RTM_DELROUTE, 0, route), "ip route del", Describe(route), [Errno.ESRCH, Errno.ENOENT]);

    internal static NetlinkMessageBuilder RouteMessage(ushort type, ushort flags, Route r)
    {
        var b = new NetlinkMessageBuilder(type, (ushort)(Nl.NLM_F_REQUEST | Nl.NLM_F_ACK | flags)).Struct(new RtMsg
        {
            Family = NetlinkMessage.Family(r.Family),
            DstLen = r.DestinationLength,
            Table = r.Table < 256 ? (byte)r.Table : Nl.RT_TABLE_COMPAT,
            Protocol = r.Protocol,
            Scope = r.Scope,
            Type = (byte)r.Type,
        });
        b.U32(Nl.RTA_TABLE, r.Table);
        if (r.Destination is not null && r.DestinationLength > 0) b.Address(Nl.RTA_DST, r.Destination);
        if (r.Gateway is not null) b.Address(Nl.RTA_GATEWAY, r.Gateway);
        if (r.OutputLink != 0) b.U32(Nl.RTA_OIF, (uint)r.OutputLink);
        if (r.PreferredSource is not null) b.Address(Nl.RTA_PREFSRC, r.PreferredSource);
        if (r.Metric != 0) b.U32(Nl.RTA_PRIORITY, r.Metric);
        return b;
    }

    private static string Describe(Route r) =>
        $"{(r.Type == RouteType.Unreachable ? "unreachable " : "")}{(r.IsDefault ? "default" : $"{r.Destination}/{r.DestinationLength}")} table {r.Table}";

    // ---- rules ---------------------------------------------------------------------------

    /// <summary>ip [-6] rule show.</summary>
    public List<Rule> Rules(AddressFamily family)
    {
        var rules = new List<Rule>();
        var request = new NetlinkMessageBuilder(Nl.RTM_GETRULE, Nl.NLM_F_REQUEST | Nl.NLM_F_DUMP)
            .Struct(new FibRuleHdr { Family = NetlinkMessage.Family(family) });
        Dump(request, "ip rule show", (in NetlinkMessage m) =>
        {
            if (m.Header.Type != Nl.RTM_NEWRULE) return;
            rules.Add(ParseRule(m));
        });
        return rules;
    }

    /// <summary>One RTM_NEWRULE of a dump, as a <see cref="Rule"/>.</summary>
    internal static Rule ParseRule(in NetlinkMessage m)
    {
        var h = m.Struct<FibRuleHdr>();
        var a = m.Attributes(sizeof(FibRuleHdr));
        return new Rule(
            NetlinkMessage.Family(h.Family),
            a.TryGetValue(Nl.FRA_PRIORITY, out var p) ? NetlinkMessage.U32(p) : 0,
            a.TryGetValue(Nl.FRA_TABLE, out var t) ? NetlinkMessage.U32(t) : h.Table,
            (RuleAction)h.Action,
            // 'fwmark 0/MASK' is dumped with the mask alone: the kernel omits a zero FRA_FWMARK.
            a.TryGetValue(Nl.FRA_FWMARK, out var mk) ? NetlinkMessage.U32(mk) : a.ContainsKey(Nl.FRA_FWMASK) ? 0u : null,
            a.TryGetValue(Nl.FRA_FWMASK, out var mm) ? NetlinkMessage.U32(mm) : null,
            a.TryGetValue(Nl.FRA_SRC, out var s) ? NetlinkMessage.Ip(s) : null,
            h.SrcLen,
            a.TryGetValue(Nl.FRA_PROTOCOL, out var pr) ? pr[0] : (byte)0,
            a.TryGetValue(Nl.FRA_DST, out var d) ? NetlinkMessage.Ip(d) : null,
            h.DstLen,
            a.TryGetValue(Nl.FRA_IIFNAME, out var iif) ? NetlinkMessage.Str(iif) : null,
            a.TryGetValue(Nl.FRA_OIFNAME, out var oif) ? NetlinkMessage.Str(oif) : null,
            (h.Flags & Rule.FlagInvert) != 0,
            // The kernel always reports these two; 0xffffffff (-1) means unset.
            a.TryGetValue(Nl.FRA_SUPPRESS_PREFIXLEN, out var sp) && NetlinkMessage.U32(sp) != uint.MaxValue ? NetlinkMessage.U32(sp) : null,
            h.Tos != 0 || (a.TryGetValue(Nl.FRA_SUPPRESS_IFGROUP, out var sg) && NetlinkMessage.U32(sg) != uint.MaxValue)
                || a.ContainsKey(Nl.FRA_UID_RANGE) || a.ContainsKey(Nl.FRA_SPORT_RANGE)
                || (a.TryGetValue(Nl.FRA_L3MDEV, out var l3) && l3[0] != 0),
            a.TryGetValue(Nl.FRA_IP_PROTO, out var ipp) ? ipp[0] : (byte)0,
            a.TryGetValue(Nl.FRA_DPORT_RANGE, out var dp) && dp.Length >= 4 ? PortRangeOf(dp) : null);
    }

    /// <summary>ip rule add ... (fails with EEXIST if an identical rule is there).</summary>
    public void Add(Rule rule) => Execute(AddRequest(rule));

    /// <summary>ip rule del ...; false when no such rule existed.</summary>
    public bool Delete(Rule rule) => Execute(DeleteRequest(rule));

    public static RtnlRequest AddRequest(Rule rule) =>
        new(RuleMessage(Nl.RTM_NEWRULE, Nl.NLM_F_CREATE | Nl.NLM_F_EXCL, rule), "ip rule add", Describe(rule), []);

    public static RtnlRequest DeleteRequest(Rule rule) =>
        new(RuleMessage(Nl.RTM_DELRULE, 0, rule), "ip rule del", Describe(rule), [Errno.ENOENT, Errno.ESRCH]);

    internal static NetlinkMessageBuilder RuleMessage(ushort type, ushort flags, Rule r)
    {
        var b = new NetlinkMessageBuilder(type, (ushort)(Nl.NLM_F_REQUEST | Nl.NLM_F_ACK | flags)).Struct(new FibRuleHdr
        {
            Family = NetlinkMessage.Family(r.Family),
            SrcLen = r.Source is null ? (byte)0 : r.SourceLength,
            DstLen = r.Destination is null ? (byte)0 : r.DestinationLength,
            Table = r.Table < 256 ? (byte)r.Table : Nl.RT_TABLE_COMPAT,
            Action = (byte)r.Action,
        });
        b.U32(Nl.FRA_PRIORITY, r.Priority);
        if (r.Action == RuleAction.ToTable) b.U32(Nl.FRA_TABLE, r.Table);
        if (r.Mark is { } mark) b.U32(Nl.FRA_FWMARK, mark);
        if (r.MarkMask is { } mask) b.U32(Nl.FRA_FWMASK, mask);
        if (r.Source is not null) b.Address(Nl.FRA_SRC, r.Source);
        if (r.Destination is not null) b.Address(Nl.FRA_DST, r.Destination);
        if (r.InputInterface is not null) b.String(Nl.FRA_IIFNAME, r.InputInterface);
        if (r.Protocol != 0) b.U8(Nl.FRA_PROTOCOL, r.Protocol);
        if (r.IpProtocol != 0) b.U8(Nl.FRA_IP_PROTO, r.IpProtocol);
        if (r.DestinationPorts is { } ports) b.Attr(Nl.FRA_DPORT_RANGE, PortRangeBytes(ports));
        return b;
    }

    /// <summary>struct fib_rule_port_range, host byte order (the kernel compares it with ntohs(port)).</summary>
    private static byte[] PortRangeBytes(PortRange ports)
    {
        var bytes = new byte[4];
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 2), ports.First);
        BitConverter.TryWriteBytes(bytes.AsSpan(2, 2), ports.Last);
        return bytes;
    }

    private static PortRange PortRangeOf(byte[] bytes) => new(BitConverter.ToUInt16(bytes, 0), BitConverter.ToUInt16(bytes, 2));

    private static string Describe(Rule r) =>
        $"pref {r.Priority}{(r.Source is null ? "" : $" from {r.Source}/{r.SourceLength}")}{(r.Destination is null ? "" : $" to {r.Destination}/{r.DestinationLength}")}"
        + $"{(r.InputInterface is null ? "" : $" iif {r.InputInterface}")}{(r.Mark is { } m ? $" fwmark 0x{m:x}" : "")}"
        + $"{(r.IpProtocol == 0 ? "" : $" ipproto {r.IpProtocol}")}{(r.DestinationPorts is { } d ? $" dport {d}" : "")} table {r.Table}";

    // ---- transport -----------------------------------------------------------------------

    private delegate void MessageHandler(in NetlinkMessage message);

    /// <summary>Returns true when the reply it was given ends what the caller waits for.</summary>
    private delegate bool ReplyVisitor(in NetlinkMessage message);

    private void Send(byte[] message, string operation, string target)
    {
        fixed (byte* p = message)
        {
            if (Libc.send(_socket.Value, p, (nuint)message.Length, 0) < 0) throw Errno.Last(operation, target);
        }
    }

    /// <summary>Receives and walks replies, one datagram after another, until the visitor says it is done.</summary>
    private void Receive(string operation, ReplyVisitor visit)
    {
        while (true)
        {
            int n = Receive(operation);
            var span = _receive.AsSpan(0, n);
            while (span.Length >= sizeof(NlMsgHdr))
            {
                var header = MemoryMarshal.Read<NlMsgHdr>(span);
                if (header.Length < sizeof(NlMsgHdr) || header.Length > span.Length) break;
                var message = new NetlinkMessage(header, span[sizeof(NlMsgHdr)..(int)header.Length]);
                span = span[Math.Min(NetlinkMessageBuilder.Align((int)header.Length), span.Length)..];
                if (visit(message)) return;
            }
        }
    }

    private void Dump(NetlinkMessageBuilder request, string operation, MessageHandler handler)
    {
        uint seq = ++_sequence;
        Send(request.Build(seq), operation, "");
        Receive(operation, (in NetlinkMessage message) =>
        {
            if (message.Header.Sequence != seq) return false;
            if (message.Header.Type == Nl.NLMSG_DONE) return true;
            if (message.Header.Type == Nl.NLMSG_ERROR)
            {
                int error = -message.Struct<NlMsgErr>().Error;
                return error == 0 ? true : throw new KernelException(operation, "", error, ExtAckMessage(message));
            }
            handler(message);
            return false;
        });
    }

    /// <summary>Sends one request and waits for its ack; false if the kernel answered with a benign error (nothing to delete).</summary>
    public bool Execute(RtnlRequest request)
    {
        var outcome = Batch([request])[0];
        return outcome.Error is null ? outcome.Done : throw outcome.Error;
    }

    /// <summary>
    /// Sends the requests in one send(2), with consecutive sequence numbers, then reads one ack for
    /// each. The kernel handles them in order, each on its own: a failure does not stop the ones
    /// after it, so every outcome is returned.
    /// </summary>
    public RtnlOutcome[] Batch(IReadOnlyList<RtnlRequest> requests)
    {
        if (requests.Count == 0) return [];
        uint first = _sequence + 1;
        var bytes = new List<byte>();
        for (int i = 0; i < requests.Count; i++) bytes.AddRange(requests[i].Message.Build(first + (uint)i));
        _sequence += (uint)requests.Count;
        Send([.. bytes], requests[0].Operation, requests.Count == 1 ? requests[0].Target : $"{requests.Count} requests");

        var outcomes = new RtnlOutcome?[requests.Count];
        int pending = requests.Count;
        Receive(requests[0].Operation, (in NetlinkMessage message) =>
        {
            long index = (long)message.Header.Sequence - first;
            if (message.Header.Type != Nl.NLMSG_ERROR || index < 0 || index >= requests.Count || outcomes[index] is not null) return false;
            var request = requests[(int)index];
            int error = -message.Struct<NlMsgErr>().Error;
            outcomes[index] = error == 0 ? new RtnlOutcome(true, null)
                : request.Benign.Contains(error) ? new RtnlOutcome(false, null)
                : new RtnlOutcome(false, new KernelException(request.Operation, request.Target, error, ExtAckMessage(message)));
            return --pending == 0;
        });
        return [.. outcomes.Select(o => o!.Value)];
    }

    private static string? ExtAckMessage(in NetlinkMessage message)
    {
        if ((message.Header.Flags & Nl.NLM_F_ACK_TLVS) == 0) return null;
        // The TLVs follow the echoed request: its header only when NLM_F_CAPPED (0x100), else all of it.
        var err = message.Struct<NlMsgErr>();
        int echoed = (message.Header.Flags & 0x100) != 0 ? sizeof(NlMsgHdr) : (int)err.Request.Length;
        var attrs = message.Attributes(sizeof(int) + echoed);
        return attrs.TryGetValue(Nl.NLMSGERR_ATTR_MSG, out var m) ? NetlinkMessage.Str(m) : null;
    }

    private int Receive(string operation)
    {
        while (true)
        {
            fixed (byte* p = _receive)
            {
                nint n = Libc.recv(_socket.Value, p, (nuint)_receive.Length, 0);
                if (n >= 0) return (int)n;
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Errno.EINTR) continue;
                if (errno == Errno.EAGAIN)
                    throw new KernelException(operation, "(netlink receive)", errno, $"no answer from the kernel within {_receiveTimeout.TotalSeconds:0.#} s; the change may or may not have been made");
                throw new KernelException(operation, "(netlink receive)", errno);
            }
        }
    }

    internal static uint ReadU32(ReadOnlySpan<byte> b) => BinaryPrimitives.ReadUInt32LittleEndian(b);
}

/// <summary>
/// What applying and undoing host changes needs of rtnetlink: a batch of requests, and the outcome
/// of each. <see cref="Rtnl"/> is the real one; a test gives a fake that refuses a chosen request.
/// </summary>
public interface IRtnlBatcher
{
    /// <summary>Sends the requests in order; the outcome of each (see <see cref="Rtnl.Batch"/>). Throws when the answers are lost.</summary>
    RtnlOutcome[] Batch(IReadOnlyList<RtnlRequest> requests);
}

/// <summary>One rtnetlink change (add or delete a route or rule), to send alone or in a batch.</summary>
public sealed class RtnlRequest
{
    internal RtnlRequest(NetlinkMessageBuilder message, string operation, string target, int[] benign)
    {
        Message = message;
        Operation = operation;
        Target = target;
        Benign = benign;
    }

    internal NetlinkMessageBuilder Message { get; }

    /// <summary>The equivalent command ("ip route add") and its object, for errors.</summary>
    public string Operation { get; }
    public string Target { get; }

    /// <summary>Errors that mean "nothing to do" (ENOENT when deleting what is gone).</summary>
    internal int[] Benign { get; }
}

/// <summary>What became of one request: done, nothing to do (Done false, no error), or an error.</summary>
public readonly record struct RtnlOutcome(bool Done, KernelException? Error);
