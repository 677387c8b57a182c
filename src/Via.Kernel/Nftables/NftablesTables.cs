using System.Runtime.InteropServices;
using Via.Kernel.Interop;
using Via.Kernel.Netlink;

namespace Via.Kernel.Nftables;

/// <summary>
/// Whether the current network namespace has any nftables table, asked over nfnetlink itself
/// (NFT_MSG_GETTABLE, one dump): with none there is no ruleset to read, and loading libnftables
/// (six shared libraries) and listing an empty ruleset would cost more than the rest of a route's set-up.
/// </summary>
public static unsafe class NftablesTables
{
    private const int NETLINK_NETFILTER = 12;
    private const ushort NFNL_SUBSYS_NFTABLES = 10, NFT_MSG_NEWTABLE = 0, NFT_MSG_GETTABLE = 1;
    private const ushort NLM_F_REQUEST = 0x1, NLM_F_DUMP = 0x300, NLMSG_ERROR = 2, NLMSG_DONE = 3;

    /// <summary>
    /// True if there is at least one table (any family) that <paramref name="ignore"/> (family, name)
    /// does not pass over, false if none, null if it cannot be told (no nf_tables, no permission).
    /// </summary>
    public static bool? Any(Func<byte, string, bool>? ignore = null)
    {
        bool any = false;
        return Dump(0, (family, name) => { any = ignore is null || !ignore(family, name); return !any; }) ? any : null;
    }

    /// <summary>The names of the tables of <paramref name="family"/> (NFPROTO_*), or null if they cannot be read (no nf_tables, no permission).</summary>
    public static List<string>? Names(byte family)
    {
        var names = new List<string>();
        return Dump(family, (f, name) => { if (f == family) names.Add(name); return true; }) ? names : null;
    }

    private const ushort NFTA_TABLE_NAME = 1;

    /// <summary>
    /// One NFT_MSG_GETTABLE dump of <paramref name="family"/> (0: all), each table (its family and
    /// name) given to <paramref name="table"/> until it returns false; false if the dump failed.
    /// </summary>
    private static bool Dump(byte family, Func<byte, string, bool> table)
    {
        int fd = Libc.socket(Nl.AF_NETLINK, Nl.SOCK_RAW | Nl.SOCK_CLOEXEC, NETLINK_NETFILTER);
        if (fd < 0) return false;
        using var socket = new SafeFd(fd);
        // nlmsghdr + struct nfgenmsg { u8 nfgen_family; u8 version = NFNETLINK_V0; __be16 res_id = 0; }
        var request = stackalloc byte[sizeof(NlMsgHdr) + 4];
        new Span<byte>(request, sizeof(NlMsgHdr) + 4).Clear();
        *(NlMsgHdr*)request = new NlMsgHdr
        {
            Length = (uint)(sizeof(NlMsgHdr) + 4),
            Type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE,
            Flags = NLM_F_REQUEST | NLM_F_DUMP,
            Sequence = 1,
        };
        request[sizeof(NlMsgHdr)] = family;
        if (Libc.send(socket.Value, request, (nuint)(sizeof(NlMsgHdr) + 4), 0) < 0) return false;
        var buffer = new byte[16384];
        fixed (byte* b = buffer)
        {
            while (true)
            {
                nint n = Libc.recv(socket.Value, b, (nuint)buffer.Length, 0);
                if (n < 0)
                {
                    if (Marshal.GetLastPInvokeError() == Errno.EINTR) continue;
                    return false;
                }
                if (n == 0) return false;
                for (nint at = 0; at + sizeof(NlMsgHdr) <= n;)
                {
                    var header = (NlMsgHdr*)(b + at);
                    if (header->Length < sizeof(NlMsgHdr) || at + header->Length > n) return false;
                    if (header->Type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE))
                    {
                        var message = new NetlinkMessage(*header, new ReadOnlySpan<byte>(b + at + sizeof(NlMsgHdr), (int)header->Length - sizeof(NlMsgHdr)));
                        string name = message.Attributes(4).TryGetValue(NFTA_TABLE_NAME, out var v) ? NetlinkMessage.Str(v) : "";
                        if (!table(message.Payload[0], name)) return true;
                    }
                    if (header->Type == NLMSG_DONE) return true;
                    if (header->Type == NLMSG_ERROR) return false;
                    at += (nint)((header->Length + 3) & ~3u);
                }
            }
        }
    }
}
