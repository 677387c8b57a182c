using System.Buffers.Binary;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using Via.Kernel.Interop;
using Via.Kernel.Netlink;

namespace Via.Kernel.Nftables;

/// <summary>
/// An nf_tables transaction sent over nfnetlink itself (what nft(8) sends, without libnftables):
/// tables, base chains and rules of a few expressions, all or nothing. libnftables costs a route
/// far more than the kernel's work: loading it (six shared libraries), its context, parsing, a
/// cache of the whole ruleset, and freeing it took 25-45 ms here against 1-9 ms in the kernel.
/// </summary>
public sealed class NftBatch
{
    /// <summary>NFPROTO_INET: tables that see both IPv4 and IPv6.</summary>
    public const byte Inet = 1;

    private const int NETLINK_NETFILTER = 12;
    private const ushort NFNL_SUBSYS_NFTABLES = 10, NFNL_MSG_BATCH_BEGIN = 0x10, NFNL_MSG_BATCH_END = 0x11;
    private const ushort NFT_MSG_NEWTABLE = 0, NFT_MSG_DELTABLE = 2, NFT_MSG_NEWCHAIN = 3, NFT_MSG_NEWRULE = 6;
    private const ushort NLM_F_REQUEST = 0x1, NLM_F_ACK = 0x4, NLM_F_CREATE = 0x400, NLM_F_APPEND = 0x800;
    private const ushort NFTA_TABLE_NAME = 1, NFTA_CHAIN_TABLE = 1, NFTA_CHAIN_NAME = 3, NFTA_CHAIN_HOOK = 4, NFTA_CHAIN_POLICY = 5, NFTA_CHAIN_TYPE = 7;
    private const ushort NFTA_HOOK_HOOKNUM = 1, NFTA_HOOK_PRIORITY = 2;
    private const ushort NFTA_RULE_TABLE = 1, NFTA_RULE_CHAIN = 2, NFTA_RULE_EXPRESSIONS = 4, NFTA_LIST_ELEM = 1, NFTA_EXPR_NAME = 1, NFTA_EXPR_DATA = 2;
    private const uint NF_ACCEPT = 1;

    private readonly byte _family;
    private readonly List<(ushort Type, ushort Flags, byte[] Attributes, string What)> _messages = [];

    public NftBatch(byte family = Inet) => _family = family;

    /// <summary><c>add table FAMILY NAME</c> (nothing if it exists).</summary>
    public NftBatch AddTable(string table) => Add(NFT_MSG_NEWTABLE, NLM_F_CREATE, $"add table {table}", a => a.String(NFTA_TABLE_NAME, table));

    /// <summary><c>delete table FAMILY NAME</c>, with its chains and rules (ENOENT if there is none).</summary>
    public NftBatch DeleteTable(string table) => Add(NFT_MSG_DELTABLE, 0, $"delete table {table}", a => a.String(NFTA_TABLE_NAME, table));

    /// <summary><c>add chain FAMILY TABLE CHAIN { type TYPE hook HOOK priority PRIORITY; policy accept; }</c>.</summary>
    public NftBatch AddBaseChain(string table, string chain, string type, NftHook hook, int priority) =>
        Add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, $"add chain {table} {chain}", a =>
        {
            a.String(NFTA_CHAIN_TABLE, table);
            a.String(NFTA_CHAIN_NAME, chain);
            var h = new NetlinkAttributes();
            h.Be32(NFTA_HOOK_HOOKNUM, (uint)hook);
            h.Be32(NFTA_HOOK_PRIORITY, (uint)priority);
            a.Attr(NFTA_CHAIN_HOOK | NlaNested, h.Bytes);
            a.Be32(NFTA_CHAIN_POLICY, NF_ACCEPT);
            a.String(NFTA_CHAIN_TYPE, type);
        });

    /// <summary><c>add rule FAMILY TABLE CHAIN EXPRESSIONS...</c> (appended).</summary>
    public NftBatch AddRule(string table, string chain, params NftExpr[] expressions) =>
        Add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, $"add rule {table} {chain}", a =>
        {
            a.String(NFTA_RULE_TABLE, table);
            a.String(NFTA_RULE_CHAIN, chain);
            var list = new NetlinkAttributes();
            foreach (var e in expressions)
            {
                var elem = new NetlinkAttributes();
                elem.String(NFTA_EXPR_NAME, e.Name);
                var data = new NetlinkAttributes();
                e.Write(data);
                elem.Attr(NFTA_EXPR_DATA | NlaNested, data.Bytes);
                list.Attr(NFTA_LIST_ELEM | NlaNested, elem.Bytes);
            }
            a.Attr(NFTA_RULE_EXPRESSIONS | NlaNested, list.Bytes);
        });

    internal const ushort NlaNested = 0x8000;

    private NftBatch Add(ushort message, ushort flags, string what, Action<NetlinkAttributes> attributes)
    {
        var a = new NetlinkAttributes();
        attributes(a);
        _messages.Add(((ushort)((NFNL_SUBSYS_NFTABLES << 8) | message), flags, a.Bytes, what));
        return this;
    }

    /// <summary>
    /// Sends the transaction (one send: BATCH_BEGIN, the messages, BATCH_END) and reads every
    /// answer: the kernel handles a batch within the send and commits all of it or none. Throws a
    /// <see cref="KernelException"/> naming the first message it refused, unless that error is one
    /// of <paramref name="benign"/> (then false: nothing was done).
    /// </summary>
    public unsafe bool Commit(string what, params int[] benign)
    {
        int fd = Libc.socket(Nl.AF_NETLINK, Nl.SOCK_RAW | Nl.SOCK_CLOEXEC, NETLINK_NETFILTER);
        if (fd < 0) throw Errno.Last("socket", "AF_NETLINK/NETLINK_NETFILTER (" + what + ")");
        using var socket = new SafeFd(fd);
        int one = 1; // extended acks: the kernel says why
        Libc.setsockopt(socket.Value, Nl.SOL_NETLINK, Nl.NETLINK_EXT_ACK, &one, sizeof(int));
        var bytes = new List<byte>();
        uint sequence = 1;
        bytes.AddRange(Message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES, [], sequence++));
        foreach (var m in _messages) bytes.AddRange(Message(m.Type, (ushort)(NLM_F_REQUEST | NLM_F_ACK | m.Flags), _family, 0, m.Attributes, sequence++));
        bytes.AddRange(Message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES, [], sequence));
        var request = bytes.ToArray();
        fixed (byte* p = request)
        {
            while (Libc.send(socket.Value, p, (nuint)request.Length, 0) < 0)
                if (Marshal.GetLastPInvokeError() != Errno.EINTR) throw Errno.Last("send", what);
        }
        // The answers are queued by the time send returns: read them all without waiting.
        KernelException? refused = null;
        bool benignOnly = false;
        int answers = 0;
        var buffer = new byte[65536];
        fixed (byte* b = buffer)
        {
            while (answers < _messages.Count)
            {
                nint n = Libc.recv(socket.Value, b, (nuint)buffer.Length, Libc.MSG_DONTWAIT);
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == Errno.EINTR) continue;
                    if (errno == Errno.EAGAIN) break;
                    throw new KernelException("recv", what, errno);
                }
                for (int at = 0; at + sizeof(NlMsgHdr) <= n;)
                {
                    var header = (NlMsgHdr*)(b + at);
                    if (header->Length < sizeof(NlMsgHdr) || at + header->Length > n) break;
                    if (header->Type == Nl.NLMSG_ERROR)
                    {
                        answers++;
                        int error = -*(int*)(b + at + sizeof(NlMsgHdr));
                        int index = (int)header->Sequence - 2;
                        if (error != 0 && refused is null)
                        {
                            string target = index >= 0 && index < _messages.Count ? _messages[index].What : what;
                            refused = new KernelException("nft", target, error);
                            benignOnly = benign.Contains(error);
                        }
                    }
                    at += NetlinkMessageBuilder.Align((int)header->Length);
                }
            }
        }
        if (refused is not null)
        {
            if (benignOnly) return false;
            throw refused;
        }
        if (answers < _messages.Count) throw new KernelException("nft", what, Errno.EIO, $"{answers} of {_messages.Count} answers came; the change may or may not have been made");
        return true;
    }

    private static byte[] Message(ushort type, ushort flags, byte family, ushort resId, byte[] attributes, uint sequence)
    {
        // nlmsghdr, struct nfgenmsg { u8 family; u8 version (NFNETLINK_V0); __be16 res_id; }, attributes
        var m = new byte[16 + 4 + attributes.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)m.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), type);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(6), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), sequence);
        m[16] = family;
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(18), resId);
        attributes.CopyTo(m, 20);
        return m;
    }
}

/// <summary>The netfilter hooks of the ip, ip6 and inet families (enum nf_inet_hooks).</summary>
public enum NftHook : uint
{
    Prerouting = 0,
    Input = 1,
    Forward = 2,
    Output = 3,
    Postrouting = 4,
}

/// <summary>
/// One expression of a rule, as nft lists it with <c>--debug=netlink</c>. Loads go to register 1
/// (NFT_REG_1, 16 bytes), where the comparison after them reads.
/// </summary>
public abstract class NftExpr
{
    private const uint Reg1 = 1, RegVerdict = 0;
    private const ushort NFTA_DATA_VALUE = 1, NFTA_DATA_VERDICT = 2, NFTA_VERDICT_CODE = 1;

    internal abstract string Name { get; }

    internal abstract void Write(NetlinkAttributes a);

    /// <summary><c>[ meta load KEY => reg 1 ]</c>.</summary>
    public static NftExpr Meta(NftMetaKey key) => new Expr("meta", a => { a.Be32(2, (uint)key); a.Be32(1, Reg1); }); // NFTA_META_KEY, NFTA_META_DREG

    /// <summary><c>[ ct load direction => reg 1 ]</c>.</summary>
    public static NftExpr CtDirection() => new Expr("ct", a => { a.Be32(2, 1); a.Be32(1, Reg1); }); // NFTA_CT_KEY = NFT_CT_DIRECTION, NFTA_CT_DREG

    /// <summary><c>[ payload load LEN b @ network header + OFFSET => reg 1 ]</c>.</summary>
    public static NftExpr NetworkHeader(uint offset, uint length) =>
        new Expr("payload", a => { a.Be32(1, Reg1); a.Be32(2, 1); a.Be32(3, offset); a.Be32(4, length); }); // DREG, BASE = NFT_PAYLOAD_NETWORK_HEADER, OFFSET, LEN

    /// <summary><c>[ cmp eq reg 1 VALUE ]</c>.</summary>
    public static NftExpr Equal(byte[] value) => Compare(0, value);

    /// <summary><c>[ cmp neq reg 1 VALUE ]</c>.</summary>
    public static NftExpr NotEqual(byte[] value) => Compare(1, value);

    /// <summary>An interface name as <c>iifname "NAME"</c> compares it: IFNAMSIZ bytes, zero-padded; with a trailing '*', only the prefix.</summary>
    public static byte[] InterfaceName(string name)
    {
        if (name.EndsWith('*')) return Encoding.ASCII.GetBytes(name[..^1]);
        var b = new byte[16];
        Encoding.ASCII.GetBytes(name).CopyTo(b, 0);
        return b;
    }

    public static byte[] Address(IPAddress address) => address.GetAddressBytes();

    /// <summary><c>[ immediate reg 0 drop ]</c>.</summary>
    public static NftExpr Drop() => new Expr("immediate", a =>
    {
        a.Be32(1, RegVerdict); // NFTA_IMMEDIATE_DREG
        var verdict = new NetlinkAttributes();
        verdict.Be32(NFTA_VERDICT_CODE, 0); // NF_DROP
        var data = new NetlinkAttributes();
        data.Attr(NFTA_DATA_VERDICT | NftBatch.NlaNested, verdict.Bytes);
        a.Attr(2 | NftBatch.NlaNested, data.Bytes); // NFTA_IMMEDIATE_DATA
    });

    /// <summary><c>[ masq ]</c>: source NAT to the output interface's address.</summary>
    public static NftExpr Masquerade() => new Expr("masq", _ => { });

    private static NftExpr Compare(uint op, byte[] value) => new Expr("cmp", a =>
    {
        a.Be32(1, Reg1); // NFTA_CMP_SREG
        a.Be32(2, op); // NFTA_CMP_OP
        var data = new NetlinkAttributes();
        data.Attr(NFTA_DATA_VALUE, value);
        a.Attr(3 | NftBatch.NlaNested, data.Bytes); // NFTA_CMP_DATA
    });

    private sealed class Expr(string name, Action<NetlinkAttributes> write) : NftExpr
    {
        internal override string Name => name;

        internal override void Write(NetlinkAttributes a) => write(a);
    }
}

/// <summary>The meta keys via's rules load (enum nft_meta_keys).</summary>
public enum NftMetaKey : uint
{
    InputInterfaceName = 6,
    OutputInterfaceName = 7,
    /// <summary>NFPROTO_IPV4 (2) or NFPROTO_IPV6 (10), one byte.</summary>
    NetfilterProtocol = 15,
}
