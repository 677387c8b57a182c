using System.ComponentModel;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Via.Kernel;
using Via.Kernel.Bpf;
using Via.Kernel.Interop;
using Via.Kernel.Netlink;
using Xunit;

namespace Via.Tests.Unit;

/// <summary>
/// C# declarations of kernel and libc ABI (struct layouts, constants) against the C headers, in the
/// manner of Tmds.LibC: layout.c is compiled with gcc at test time and prints offsetof/sizeof and
/// constant values, which are compared with Marshal.OffsetOf/SizeOf and the C# constants. A wrong
/// layout is caught here instead of by an EINVAL from the kernel. gcc is required: without it the
/// tests fail (CI installs gcc and linux-libc-dev), they never skip.
/// </summary>
public class LayoutTests
{
    private static readonly Lazy<IReadOnlyDictionary<string, long>> C = new(CompileAndRun);

    private const DynamicallyAccessedMemberTypes AllFields = DynamicallyAccessedMemberTypes.PublicFields | DynamicallyAccessedMemberTypes.NonPublicFields;

    // ---- bpf --------------------------------------------------------------------------------

    [Fact]
    public void ProgLoadAttr_matches_union_bpf_attr()
    {
        var c = new Check();
        c.Fields<ProgLoadAttr>("bpf_attr",
            ("prog_type", nameof(ProgLoadAttr.ProgType)),
            ("insn_cnt", nameof(ProgLoadAttr.InsnCount)),
            ("insns", nameof(ProgLoadAttr.Insns)),
            ("license", nameof(ProgLoadAttr.License)),
            ("log_level", nameof(ProgLoadAttr.LogLevel)),
            ("log_size", nameof(ProgLoadAttr.LogSize)),
            ("log_buf", nameof(ProgLoadAttr.LogBuf)),
            ("kern_version", nameof(ProgLoadAttr.KernVersion)),
            ("prog_flags", nameof(ProgLoadAttr.ProgFlags)),
            ("prog_name", nameof(ProgLoadAttr.ProgName)),
            ("prog_ifindex", nameof(ProgLoadAttr.ProgIfindex)),
            ("expected_attach_type", nameof(ProgLoadAttr.ExpectedAttachType)));
        // ProgLoadAttr is a 128-byte prefix of union bpf_attr, on purpose: the kernel
        // (bpf_check_uarg_tail_zero) takes any size up to a page, reading what it knows and
        // requiring the rest to be zero. It must cover the last field we set and stay within
        // the union as these headers define it.
        c.SizeCovers<ProgLoadAttr>("bpf_attr", "expected_attach_type");
        c.SizeWithin<ProgLoadAttr>("bpf_attr");
        c.Equal("C# size", Unsafe.SizeOf<ProgLoadAttr>(), 128);
        c.Assert();
    }

    [Fact]
    public void ProgAttachAttr_matches_union_bpf_attr()
    {
        var c = new Check();
        c.Fields<ProgAttachAttr>("bpf_attr",
            ("target_fd", nameof(ProgAttachAttr.TargetFd)),
            ("attach_bpf_fd", nameof(ProgAttachAttr.AttachBpfFd)),
            ("attach_type", nameof(ProgAttachAttr.AttachType)),
            ("attach_flags", nameof(ProgAttachAttr.AttachFlags)),
            ("replace_bpf_fd", nameof(ProgAttachAttr.ReplaceBpfFd)));
        // A prefix of the attach struct (newer kernels add relative_fd, expected_revision): see above.
        c.SizeCovers<ProgAttachAttr>("bpf_attr", "replace_bpf_fd");
        c.SizeWithin<ProgAttachAttr>("bpf_attr");
        c.Assert();
    }

    [Fact]
    public void ProgQueryAttr_matches_union_bpf_attr()
    {
        var c = new Check();
        c.Fields<ProgQueryAttr>("bpf_attr",
            ("query.target_fd", nameof(ProgQueryAttr.TargetFd)),
            ("query.attach_type", nameof(ProgQueryAttr.AttachType)),
            ("query.query_flags", nameof(ProgQueryAttr.QueryFlags)),
            ("query.attach_flags", nameof(ProgQueryAttr.AttachFlags)),
            ("query.prog_ids", nameof(ProgQueryAttr.ProgIds)),
            ("query.prog_cnt", nameof(ProgQueryAttr.ProgCount)));
        // A prefix of the query struct (newer kernels add prog_attach_flags, link ids): see above.
        c.SizeCovers<ProgQueryAttr>("bpf_attr", "query.prog_cnt");
        c.SizeWithin<ProgQueryAttr>("bpf_attr");
        c.Assert();
    }

    [Fact]
    public void GetFdByIdAttr_matches_union_bpf_attr()
    {
        var c = new Check();
        c.Fields<GetFdByIdAttr>("bpf_attr",
            ("prog_id", nameof(GetFdByIdAttr.Id)),
            ("next_id", nameof(GetFdByIdAttr.NextId)),
            ("open_flags", nameof(GetFdByIdAttr.OpenFlags)));
        c.SizeCovers<GetFdByIdAttr>("bpf_attr", "open_flags");
        c.SizeWithin<GetFdByIdAttr>("bpf_attr");
        c.Assert();
    }

    [Fact]
    public void GetInfoAttr_matches_union_bpf_attr()
    {
        var c = new Check();
        c.Fields<GetInfoAttr>("bpf_attr",
            ("info.bpf_fd", nameof(GetInfoAttr.BpfFd)),
            ("info.info_len", nameof(GetInfoAttr.InfoLen)),
            ("info.info", nameof(GetInfoAttr.Info)));
        c.SizeCovers<GetInfoAttr>("bpf_attr", "info.info");
        c.SizeWithin<GetInfoAttr>("bpf_attr");
        c.Assert();
    }

    [Fact]
    public void ProgInfo_is_a_prefix_of_bpf_prog_info()
    {
        var c = new Check();
        c.Fields<ProgInfo>("bpf_prog_info",
            ("type", nameof(ProgInfo.Type)),
            ("id", nameof(ProgInfo.Id)),
            ("nr_map_ids", nameof(ProgInfo.NrMapIds)),
            ("map_ids", nameof(ProgInfo.MapIds)),
            ("name", nameof(ProgInfo.Name)));
        // ProgInfo stops after name (80 bytes), on purpose: BPF_OBJ_GET_INFO_BY_FD fills
        // min(info_len, sizeof(struct bpf_prog_info)) bytes, so a prefix is enough; it must reach
        // the end of name and not exceed the struct.
        c.SizeCovers<ProgInfo>("bpf_prog_info", "name");
        c.Equal("C# size of ProgInfo", Unsafe.SizeOf<ProgInfo>(), C.Value["off:bpf_prog_info.name"] + C.Value["size:bpf_prog_info.name"]);
        c.Equal("C# size of ProgInfo <= sizeof(struct bpf_prog_info)", Unsafe.SizeOf<ProgInfo>() <= C.Value["sizeof:bpf_prog_info"] ? 1 : 0, 1);
        c.Assert();
    }

    [Fact]
    public void MapInfo_is_a_prefix_of_bpf_map_info()
    {
        var c = new Check();
        c.Fields<MapInfo>("bpf_map_info",
            ("type", nameof(MapInfo.Type)), ("id", nameof(MapInfo.Id)), ("key_size", nameof(MapInfo.KeySize)),
            ("value_size", nameof(MapInfo.ValueSize)), ("max_entries", nameof(MapInfo.MaxEntries)), ("name", nameof(MapInfo.Name)));
        c.SizeCovers<MapInfo>("bpf_map_info", "name");
        c.Equal("C# size of MapInfo <= sizeof(struct bpf_map_info)", Unsafe.SizeOf<MapInfo>() <= C.Value["sizeof:bpf_map_info"] ? 1 : 0, 1);
        c.Assert();
    }

    [Fact]
    public void MapCreateAttr_and_MapElemAttr_match_union_bpf_attr()
    {
        var c = new Check();
        c.Fields<MapCreateAttr>("bpf_attr",
            ("map_type", nameof(MapCreateAttr.MapType)), ("key_size", nameof(MapCreateAttr.KeySize)), ("value_size", nameof(MapCreateAttr.ValueSize)),
            ("max_entries", nameof(MapCreateAttr.MaxEntries)), ("map_flags", nameof(MapCreateAttr.MapFlags)), ("map_name", nameof(MapCreateAttr.MapName)));
        c.SizeCovers<MapCreateAttr>("bpf_attr", "map_name");
        c.SizeWithin<MapCreateAttr>("bpf_attr");
        c.Fields<MapElemAttr>("bpf_attr",
            ("map_fd", nameof(MapElemAttr.MapFd)), ("key", nameof(MapElemAttr.Key)), ("value", nameof(MapElemAttr.Value)), ("flags", nameof(MapElemAttr.Flags)));
        c.SizeCovers<MapElemAttr>("bpf_attr", "flags");
        c.SizeWithin<MapElemAttr>("bpf_attr");
        c.Assert();
    }

    [Fact]
    public void SkBuff_and_sock_addr_offsets_match_the_contexts()
    {
        var c = new Check();
        // Read with 32-bit loads (Size.Word): each field must be a u32; user_ip6 is four of them.
        foreach (var (label, offset) in new (string, short)[]
        {
            ("__sk_buff.len", SkBuffField.Len), ("__sk_buff.ifindex", SkBuffField.IfIndex), ("__sk_buff.gso_segs", SkBuffField.GsoSegs),
            ("bpf_sock_addr.user_family", BpfSockAddrField.UserFamily), ("bpf_sock_addr.user_ip4", BpfSockAddrField.UserIp4),
            ("bpf_sock_addr.user_port", BpfSockAddrField.UserPort),
        })
        {
            c.Equal($"off:{label}", offset);
            c.Equal($"size:{label}", 4);
        }
        c.Equal("off:bpf_sock_addr.user_ip6", BpfSockAddrField.UserIp6);
        c.Equal("size:bpf_sock_addr.user_ip6", 16);
        c.Assert();
    }

    [Fact]
    public void Guard_constants_match_the_headers()
    {
        var c = new Check();
        c.Equal("const:BPF_MAP_CREATE", PrivateConst(typeof(BpfSyscall), "CmdMapCreate"));
        c.Equal("const:BPF_MAP_LOOKUP_ELEM", PrivateConst(typeof(BpfSyscall), "CmdMapLookupElem"));
        c.Equal("const:BPF_MAP_GET_FD_BY_ID", PrivateConst(typeof(BpfSyscall), "CmdMapGetFdById"));
        c.Equal("const:BPF_PROG_TYPE_CGROUP_SKB", (long)BpfProgType.CgroupSkb);
        c.Equal("const:BPF_PROG_TYPE_CGROUP_SOCK_ADDR", (long)BpfProgType.CgroupSockAddr);
        c.Equal("const:BPF_CGROUP_INET_INGRESS", (long)BpfAttachType.CgroupInetIngress);
        c.Equal("const:BPF_CGROUP_INET_EGRESS", (long)BpfAttachType.CgroupInetEgress);
        c.Equal("const:BPF_CGROUP_INET6_CONNECT", (long)BpfAttachType.CgroupInet6Connect);
        c.Equal("const:BPF_MAP_TYPE_ARRAY", (long)BpfMapType.Array);
        c.Equal("const:BPF_MAP_TYPE_PERCPU_ARRAY", (long)BpfMapType.PerCpuArray);
        c.Equal("const:BPF_FUNC_map_lookup_elem", (long)BpfHelper.MapLookupElem);
        c.Equal("const:BPF_FUNC_setsockopt", (long)BpfHelper.SetSockopt);
        c.Equal("const:BPF_MAP_TYPE_HASH", (long)BpfMapType.Hash);
        c.Equal("const:BPF_MAP_UPDATE_ELEM", PrivateConst(typeof(BpfSyscall), "CmdMapUpdateElem"));
        c.Equal("const:BPF_MAP_DELETE_ELEM", PrivateConst(typeof(BpfSyscall), "CmdMapDeleteElem"));
        c.Equal("const:BPF_FUNC_get_current_uid_gid", (long)BpfHelper.GetCurrentUidGid);
        c.Equal("const:BPF_FUNC_get_current_comm", (long)BpfHelper.GetCurrentComm);
        c.Equal("const:BPF_FUNC_get_netns_cookie", (long)BpfHelper.GetNetnsCookie);
        c.Equal("const:SO_NETNS_COOKIE", PrivateConst(typeof(Via.Kernel.Namespaces), "SoNetnsCookie"));
        c.Equal("const:SOL_SOCKET", Via.Mechanisms.Cgroup.SocketMarkProgram.SolSocket);
        c.Equal("const:SO_DONTROUTE", Via.Mechanisms.Cgroup.SocketMarkProgram.SoDontRoute);
        c.Equal("const:SO_MARK", Via.Mechanisms.Cgroup.SocketMarkProgram.SoMark);
        c.Equal("const:SO_BINDTODEVICE", Via.Mechanisms.Cgroup.SocketMarkProgram.SoBindToDevice);
        c.Equal("const:SO_BINDTOIFINDEX", Via.Mechanisms.Cgroup.SocketMarkProgram.SoBindToIfindex);
        c.Equal("const:SO_BINDTOIFINDEX", Via.Mechanisms.Guard.EgressGuardPrograms.SoBindToIfindex);
        c.Equal("const:IPPROTO_IP", Via.Mechanisms.Cgroup.SocketMarkProgram.IpProtoIp);
        c.Equal("const:IPPROTO_IPV6", Via.Mechanisms.Cgroup.SocketMarkProgram.IpProtoIpv6);
        c.Equal("const:IP_UNICAST_IF", Via.Mechanisms.Cgroup.SocketMarkProgram.IpUnicastIf);
        c.Equal("const:IPV6_UNICAST_IF", Via.Mechanisms.Cgroup.SocketMarkProgram.Ipv6UnicastIf);
        c.Assert();
    }

    [Fact]
    public void BpfSockField_offsets_match_struct_bpf_sock()
    {
        var c = new Check();
        // The program stores the mark with a 32-bit access (Size.Word), so each field must be a u32.
        foreach (var (field, offset) in new (string, short)[]
        {
            ("bound_dev_if", BpfSockField.BoundDevIf), ("family", BpfSockField.Family), ("type", BpfSockField.Type),
            ("protocol", BpfSockField.Protocol), ("mark", BpfSockField.Mark), ("priority", BpfSockField.Priority),
        })
        {
            c.Equal($"off:bpf_sock.{field}", offset);
            c.Equal($"size:bpf_sock.{field}", 4);
        }
        c.Assert();
    }

    [Fact]
    public void BpfSockoptField_offsets_match_struct_bpf_sockopt()
    {
        var c = new Check();
        foreach (var (field, offset, size) in new (string, short, int)[]
        {
            ("sk", BpfSockoptField.Sk, 8), ("optval", BpfSockoptField.OptVal, 8), ("optval_end", BpfSockoptField.OptValEnd, 8),
            ("level", BpfSockoptField.Level, 4), ("optname", BpfSockoptField.OptName, 4), ("optlen", BpfSockoptField.OptLen, 4),
            ("retval", BpfSockoptField.RetVal, 4),
        })
        {
            c.Equal($"off:bpf_sockopt.{field}", offset);
            c.Equal($"size:bpf_sockopt.{field}", size);
        }
        c.Assert();
    }

    [Fact]
    public void Encoded_instruction_is_the_size_of_struct_bpf_insn()
    {
        var c = new Check();
        c.Equal("sizeof:bpf_insn", Asm.Encode([Asm.Return()]).Length);
        c.Assert();
    }

    [Fact]
    public void Bpf_constants_match_the_header()
    {
        var c = new Check();
        c.Equal("const:BPF_PROG_LOAD", PrivateConst(typeof(BpfSyscall), "CmdProgLoad"));
        c.Equal("const:BPF_PROG_ATTACH", PrivateConst(typeof(BpfSyscall), "CmdProgAttach"));
        c.Equal("const:BPF_PROG_DETACH", PrivateConst(typeof(BpfSyscall), "CmdProgDetach"));
        c.Equal("const:BPF_PROG_GET_FD_BY_ID", PrivateConst(typeof(BpfSyscall), "CmdProgGetFdById"));
        c.Equal("const:BPF_OBJ_GET_INFO_BY_FD", PrivateConst(typeof(BpfSyscall), "CmdObjGetInfoByFd"));
        c.Equal("const:BPF_PROG_QUERY", PrivateConst(typeof(BpfSyscall), "CmdProgQuery"));
        c.Equal("const:BPF_PROG_TYPE_CGROUP_SOCK", (long)BpfProgType.CgroupSock);
        c.Equal("const:BPF_PROG_TYPE_CGROUP_SOCKOPT", (long)BpfProgType.CgroupSockopt);
        c.Equal("const:BPF_CGROUP_INET_SOCK_CREATE", (long)BpfAttachType.CgroupInetSockCreate);
        c.Equal("const:BPF_CGROUP_SETSOCKOPT", (long)BpfAttachType.CgroupSetsockopt);
        c.Equal("const:BPF_F_ALLOW_MULTI", BpfSyscall.AllowMulti);
        c.Equal("const:BPF_OBJ_NAME_LEN", C.Value["size:bpf_attr.prog_name"]);
        // The syscall number of the architecture the tests (and gcc) run on.
        var number = typeof(BpfSyscall).GetField("SyscallNumber", BindingFlags.NonPublic | BindingFlags.Static)?.GetValue(null);
        c.Equal("const:__NR_bpf", number is nint n ? n : -1);
        if (RuntimeInformation.ProcessArchitecture == Architecture.X64) c.Equal("const:__NR_bpf", Libc.SYS_bpf);
        c.Assert();
    }

    [Fact]
    public void Instruction_encoding_constants_match_the_header()
    {
        var c = new Check();
        c.Equal("const:BPF_LD", Asm.ClassLd);
        c.Equal("const:BPF_IMM", Asm.ModeImm);
        c.Equal("const:BPF_ATOMIC", Asm.ModeAtomic);
        c.Equal("const:BPF_ADD", Asm.OpAdd);
        c.Equal("const:BPF_AND", Asm.OpAnd);
        c.Equal("const:BPF_CALL", Asm.OpCall);
        c.Equal("const:BPF_PSEUDO_MAP_FD", Asm.PseudoMapFd);
        c.Equal("const:BPF_LDX", Asm.ClassLdx);
        c.Equal("const:BPF_ST", Asm.ClassSt);
        c.Equal("const:BPF_STX", Asm.ClassStx);
        c.Equal("const:BPF_JMP", Asm.ClassJmp);
        c.Equal("const:BPF_ALU64", Asm.ClassAlu64);
        c.Equal("const:BPF_MEM", Asm.ModeMem);
        c.Equal("const:BPF_K", Asm.SourceImm);
        c.Equal("const:BPF_X", Asm.SourceReg);
        c.Equal("const:BPF_MOV", Asm.OpMov);
        c.Equal("const:BPF_JA", Asm.OpJa);
        c.Equal("const:BPF_EXIT", Asm.OpExit);
        c.Equal("const:BPF_W", (long)Size.Word);
        c.Equal("const:BPF_H", (long)Size.Half);
        c.Equal("const:BPF_B", (long)Size.Byte);
        c.Equal("const:BPF_DW", (long)Size.DWord);
        c.Equal("const:BPF_JEQ", (long)JumpOp.Equal);
        c.Equal("const:BPF_JGT", (long)JumpOp.Greater);
        c.Equal("const:BPF_JGE", (long)JumpOp.GreaterOrEqual);
        c.Equal("const:BPF_JNE", (long)JumpOp.NotEqual);
        c.Assert();
    }

    // ---- netlink ----------------------------------------------------------------------------

    [Fact]
    public void NlMsgHdr_matches_struct_nlmsghdr()
    {
        var c = new Check();
        c.Struct<NlMsgHdr>("nlmsghdr",
            ("nlmsg_len", nameof(NlMsgHdr.Length)), ("nlmsg_type", nameof(NlMsgHdr.Type)), ("nlmsg_flags", nameof(NlMsgHdr.Flags)),
            ("nlmsg_seq", nameof(NlMsgHdr.Sequence)), ("nlmsg_pid", nameof(NlMsgHdr.PortId)));
        c.Assert();
    }

    [Fact]
    public void RtMsg_matches_struct_rtmsg()
    {
        var c = new Check();
        c.Struct<RtMsg>("rtmsg",
            ("rtm_family", nameof(RtMsg.Family)), ("rtm_dst_len", nameof(RtMsg.DstLen)), ("rtm_src_len", nameof(RtMsg.SrcLen)),
            ("rtm_tos", nameof(RtMsg.Tos)), ("rtm_table", nameof(RtMsg.Table)), ("rtm_protocol", nameof(RtMsg.Protocol)),
            ("rtm_scope", nameof(RtMsg.Scope)), ("rtm_type", nameof(RtMsg.Type)), ("rtm_flags", nameof(RtMsg.Flags)));
        c.Assert();
    }

    [Fact]
    public void FibRuleHdr_matches_struct_fib_rule_hdr()
    {
        var c = new Check();
        c.Struct<FibRuleHdr>("fib_rule_hdr",
            ("family", nameof(FibRuleHdr.Family)), ("dst_len", nameof(FibRuleHdr.DstLen)), ("src_len", nameof(FibRuleHdr.SrcLen)),
            ("tos", nameof(FibRuleHdr.Tos)), ("table", nameof(FibRuleHdr.Table)), ("res1", nameof(FibRuleHdr.Res1)),
            ("res2", nameof(FibRuleHdr.Res2)), ("action", nameof(FibRuleHdr.Action)), ("flags", nameof(FibRuleHdr.Flags)));
        c.Assert();
    }

    [Fact]
    public void IfInfoMsg_matches_struct_ifinfomsg()
    {
        var c = new Check();
        c.Struct<IfInfoMsg>("ifinfomsg",
            ("ifi_family", nameof(IfInfoMsg.Family)), ("__ifi_pad", nameof(IfInfoMsg.Pad)), ("ifi_type", nameof(IfInfoMsg.Type)),
            ("ifi_index", nameof(IfInfoMsg.Index)), ("ifi_flags", nameof(IfInfoMsg.Flags)), ("ifi_change", nameof(IfInfoMsg.Change)));
        c.Assert();
    }

    [Fact]
    public void RtNextHop_matches_struct_rtnexthop()
    {
        var c = new Check();
        c.Struct<RtNextHop>("rtnexthop",
            ("rtnh_len", nameof(RtNextHop.Length)), ("rtnh_flags", nameof(RtNextHop.Flags)), ("rtnh_hops", nameof(RtNextHop.Hops)),
            ("rtnh_ifindex", nameof(RtNextHop.IfIndex)));
        c.Assert();
    }

    [Fact]
    public void IfAddrMsg_matches_struct_ifaddrmsg()
    {
        var c = new Check();
        c.Struct<IfAddrMsg>("ifaddrmsg",
            ("ifa_family", nameof(IfAddrMsg.Family)), ("ifa_prefixlen", nameof(IfAddrMsg.PrefixLen)), ("ifa_flags", nameof(IfAddrMsg.Flags)),
            ("ifa_scope", nameof(IfAddrMsg.Scope)), ("ifa_index", nameof(IfAddrMsg.Index)));
        c.Assert();
    }

    [Fact]
    public void NlMsgErr_matches_struct_nlmsgerr()
    {
        var c = new Check();
        c.Struct<NlMsgErr>("nlmsgerr", ("error", nameof(NlMsgErr.Error)), ("msg", nameof(NlMsgErr.Request)));
        c.Assert();
    }

    [Fact]
    public void SockaddrNl_matches_struct_sockaddr_nl()
    {
        var c = new Check();
        c.Struct<SockaddrNl>("sockaddr_nl",
            ("nl_family", nameof(SockaddrNl.Family)), ("nl_pad", nameof(SockaddrNl.Pad)), ("nl_pid", nameof(SockaddrNl.PortId)),
            ("nl_groups", nameof(SockaddrNl.Groups)));
        c.Assert();
    }

    [Fact]
    public void Netlink_constants_match_the_headers()
    {
        var c = new Check();
        c.Equal("const:RTM_NEWLINK", Nl.RTM_NEWLINK);
        c.Equal("const:RTM_GETLINK", Nl.RTM_GETLINK);
        c.Equal("const:RTM_NEWADDR", Nl.RTM_NEWADDR);
        c.Equal("const:RTM_GETADDR", Nl.RTM_GETADDR);
        c.Equal("const:RTM_NEWROUTE", Nl.RTM_NEWROUTE);
        c.Equal("const:RTM_DELROUTE", Nl.RTM_DELROUTE);
        c.Equal("const:RTM_GETROUTE", Nl.RTM_GETROUTE);
        c.Equal("const:RTM_NEWRULE", Nl.RTM_NEWRULE);
        c.Equal("const:RTM_DELRULE", Nl.RTM_DELRULE);
        c.Equal("const:RTM_GETRULE", Nl.RTM_GETRULE);
        c.Equal("const:NLMSG_ERROR", Nl.NLMSG_ERROR);
        c.Equal("const:NLMSG_DONE", Nl.NLMSG_DONE);
        c.Equal("const:NLM_F_REQUEST", Nl.NLM_F_REQUEST);
        c.Equal("const:NLM_F_MULTI", Nl.NLM_F_MULTI);
        c.Equal("const:NLM_F_ACK", Nl.NLM_F_ACK);
        c.Equal("const:NLM_F_DUMP", Nl.NLM_F_DUMP);
        c.Equal("const:NLM_F_EXCL", Nl.NLM_F_EXCL);
        c.Equal("const:NLM_F_CREATE", Nl.NLM_F_CREATE);
        c.Equal("const:NLM_F_ACK_TLVS", Nl.NLM_F_ACK_TLVS);
        c.Equal("const:NLMSGERR_ATTR_MSG", Nl.NLMSGERR_ATTR_MSG);
        c.Equal("const:RTA_DST", Nl.RTA_DST);
        c.Equal("const:RTA_OIF", Nl.RTA_OIF);
        c.Equal("const:RTA_GATEWAY", Nl.RTA_GATEWAY);
        c.Equal("const:RTA_PRIORITY", Nl.RTA_PRIORITY);
        c.Equal("const:RTA_PREFSRC", Nl.RTA_PREFSRC);
        c.Equal("const:RTA_TABLE", Nl.RTA_TABLE);
        c.Equal("const:RTA_MULTIPATH", Nl.RTA_MULTIPATH);
        c.Equal("const:FRA_SRC", Nl.FRA_SRC);
        c.Equal("const:FRA_PRIORITY", Nl.FRA_PRIORITY);
        c.Equal("const:FRA_FWMARK", Nl.FRA_FWMARK);
        c.Equal("const:FRA_TABLE", Nl.FRA_TABLE);
        c.Equal("const:FRA_FWMASK", Nl.FRA_FWMASK);
        c.Equal("const:FRA_PROTOCOL", Nl.FRA_PROTOCOL);
        c.Equal("const:IFLA_IFNAME", Nl.IFLA_IFNAME);
        c.Equal("const:IFA_ADDRESS", Nl.IFA_ADDRESS);
        c.Equal("const:IFA_LOCAL", Nl.IFA_LOCAL);
        c.Equal("const:RT_TABLE_COMPAT", Nl.RT_TABLE_COMPAT);
        c.Equal("const:AF_NETLINK", Nl.AF_NETLINK);
        c.Equal("const:NETLINK_ROUTE", Nl.NETLINK_ROUTE);
        c.Equal("const:SOCK_RAW", Nl.SOCK_RAW);
        c.Equal("const:SOCK_CLOEXEC", Nl.SOCK_CLOEXEC);
        c.Equal("const:SOL_NETLINK", Nl.SOL_NETLINK);
        c.Equal("const:NETLINK_EXT_ACK", Nl.NETLINK_EXT_ACK);
        c.Equal("const:NETLINK_ADD_MEMBERSHIP", Nl.NETLINK_ADD_MEMBERSHIP);
        c.Equal("const:RTNLGRP_LINK", Nl.RTNLGRP_LINK);
        c.Equal("const:RTNLGRP_IPV4_IFADDR", Nl.RTNLGRP_IPV4_IFADDR);
        c.Equal("const:RTNLGRP_IPV4_ROUTE", Nl.RTNLGRP_IPV4_ROUTE);
        c.Equal("const:RTNLGRP_IPV4_RULE", Nl.RTNLGRP_IPV4_RULE);
        c.Equal("const:RTNLGRP_IPV6_IFADDR", Nl.RTNLGRP_IPV6_IFADDR);
        c.Equal("const:RTNLGRP_IPV6_ROUTE", Nl.RTNLGRP_IPV6_ROUTE);
        c.Equal("const:RTNLGRP_IPV6_RULE", Nl.RTNLGRP_IPV6_RULE);
        c.Equal("const:POLLIN", Libc.POLLIN);
        c.Equal("const:MSG_DONTWAIT", Libc.MSG_DONTWAIT);
        c.Equal("const:ENOBUFS", Errno.ENOBUFS);
        // ExtAckMessage tests the NLM_F_CAPPED bit as a literal.
        c.Equal("const:NLM_F_CAPPED", 0x100);
        // NetlinkMessage.Family maps AF_INET/AF_INET6 as literals.
        c.Equal("const:AF_INET", NetlinkMessage.Family(System.Net.Sockets.AddressFamily.InterNetwork));
        c.Equal("const:AF_INET6", NetlinkMessage.Family(System.Net.Sockets.AddressFamily.InterNetworkV6));
        c.Assert();
    }

    [Fact]
    public void Route_rule_and_link_values_match_the_headers()
    {
        var c = new Check();
        c.Equal("const:RTN_UNICAST", (long)RouteType.Unicast);
        c.Equal("const:RTN_LOCAL", (long)RouteType.Local);
        c.Equal("const:RTN_BROADCAST", (long)RouteType.Broadcast);
        c.Equal("const:RTN_UNREACHABLE", (long)RouteType.Unreachable);
        c.Equal("const:FR_ACT_TO_TBL", (long)RuleAction.ToTable);
        c.Equal("const:FR_ACT_UNREACHABLE", (long)RuleAction.Unreachable);
        c.Equal("const:RT_SCOPE_UNIVERSE", InterfaceAddress.ScopeUniverse);
        c.Equal("const:RT_SCOPE_LINK", InterfaceAddress.ScopeLink);
        c.Equal("const:RT_SCOPE_HOST", InterfaceAddress.ScopeHost);
        c.Equal("const:IFF_UP", Link.IFF_UP);
        c.Equal("const:IFF_LOOPBACK", Link.IFF_LOOPBACK);
        c.Equal("const:IFF_POINTOPOINT", Link.IFF_POINTOPOINT);
        c.Equal("const:IFF_RUNNING", Link.IFF_RUNNING);
        c.Equal("const:IFF_LOWER_UP", Link.IFF_LOWER_UP);
        // RouteResolver's private MainTable.
        c.Equal("const:RT_TABLE_MAIN", PrivateConst(typeof(Via.Planning.RouteResolver), "MainTable"));
        c.Assert();
    }

    // ---- libc -------------------------------------------------------------------------------

    [Fact]
    public void Passwd_matches_glibc_struct_passwd()
    {
        var c = new Check();
        c.Struct<Libc.Passwd>("passwd",
            ("pw_name", nameof(Libc.Passwd.pw_name)), ("pw_passwd", nameof(Libc.Passwd.pw_passwd)), ("pw_uid", nameof(Libc.Passwd.pw_uid)),
            ("pw_gid", nameof(Libc.Passwd.pw_gid)), ("pw_gecos", nameof(Libc.Passwd.pw_gecos)), ("pw_dir", nameof(Libc.Passwd.pw_dir)),
            ("pw_shell", nameof(Libc.Passwd.pw_shell)));
        // The leading part only (gr_mem is not read).
        c.Fields<Libc.Group>("group", ("gr_name", nameof(Libc.Group.gr_name)), ("gr_passwd", nameof(Libc.Group.gr_passwd)), ("gr_gid", nameof(Libc.Group.gr_gid)));
        c.SizeWithin<Libc.Group>("group");
        c.Assert();
    }

    [Fact]
    public void Libc_constants_match_the_headers()
    {
        var c = new Check();
        c.Equal("const:O_RDONLY", Libc.O_RDONLY);
        c.Equal("const:O_WRONLY", Libc.O_WRONLY);
        c.Equal("const:O_RDWR", Libc.O_RDWR);
        c.Equal("const:O_CREAT", Libc.O_CREAT);
        c.Equal("const:O_CLOEXEC", Libc.O_CLOEXEC);
        c.Equal("const:O_DIRECTORY", Libc.O_DIRECTORY);
        c.Equal("const:LOCK_EX", Libc.LOCK_EX);
        c.Equal("const:LOCK_UN", Libc.LOCK_UN);
        c.Equal("const:SIG_SETMASK", Libc.SIG_SETMASK);
        c.Equal("const:SIGPIPE", Libc.SIGPIPE);
        c.Equal("const:STAT_INO_OFFSET", global::Via.Kernel.Namespaces.StatInodeOffset);
        c.Equal("const:STAT_INO_SIZE", sizeof(ulong));
        c.Equal("const:CLONE_NEWNET", global::Via.Kernel.Namespaces.CLONE_NEWNET);
        Xunit.Assert.True(C.Value["const:SIZEOF_STAT"] <= global::Via.Kernel.Namespaces.StatBufferSize, "struct stat outgrew the buffer Namespaces gives stat()");
        c.Assert();
    }

    [Fact]
    public void Errno_values_match_the_headers()
    {
        var c = new Check();
        c.Equal("const:EPERM", Errno.EPERM);
        c.Equal("const:ENOENT", Errno.ENOENT);
        c.Equal("const:ESRCH", Errno.ESRCH);
        c.Equal("const:EINTR", Errno.EINTR);
        c.Equal("const:EIO", Errno.EIO);
        c.Equal("const:ENOEXEC", Errno.ENOEXEC);
        c.Equal("const:EBADF", Errno.EBADF);
        c.Equal("const:EAGAIN", Errno.EAGAIN);
        c.Equal("const:ENOMEM", Errno.ENOMEM);
        c.Equal("const:EACCES", Errno.EACCES);
        c.Equal("const:EBUSY", Errno.EBUSY);
        c.Equal("const:EEXIST", Errno.EEXIST);
        c.Equal("const:ENOTDIR", Errno.ENOTDIR);
        c.Equal("const:ENODEV", Errno.ENODEV);
        c.Equal("const:EINVAL", Errno.EINVAL);
        c.Equal("const:ENOSPC", Errno.ENOSPC);
        c.Equal("const:ENOTEMPTY", Errno.ENOTEMPTY);
        c.Equal("const:ENOTSUP", Errno.ENOTSUP);
        c.Equal("const:EOPNOTSUPP", Errno.EOPNOTSUPP);
        c.Equal("const:EADDRNOTAVAIL", Errno.EADDRNOTAVAIL);
        c.Equal("const:ENETUNREACH", Errno.ENETUNREACH);
        c.Assert();
    }

    [Fact]
    public void Layout_program_printed_every_kind_of_entry()
    {
        // Guards the harness itself: a broken layout.c that prints nothing must not pass.
        var keys = C.Value.Keys.ToList();
        Assert.Contains(keys, k => k.StartsWith("off:", StringComparison.Ordinal));
        Assert.Contains(keys, k => k.StartsWith("size:", StringComparison.Ordinal));
        Assert.Contains(keys, k => k.StartsWith("sizeof:", StringComparison.Ordinal));
        Assert.Contains(keys, k => k.StartsWith("const:", StringComparison.Ordinal));
        // Two values fixed by the ABI for good, as a check that the output is parsed as meant.
        Assert.Equal(16, C.Value["sizeof:nlmsghdr"]);
        Assert.Equal(8, C.Value["sizeof:bpf_insn"]);
    }

    // ---- harness ----------------------------------------------------------------------------

    private static long PrivateConst([DynamicallyAccessedMembers(AllFields)] Type type, string name) =>
        type.GetField(name, BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Static)?.GetRawConstantValue() is { } v
            ? Convert.ToInt64(v)
            : throw new InvalidOperationException($"{type.Name}.{name} not found: LayoutTests reads it by reflection, update the test if it was renamed");

    /// <summary>Collects every mismatch of one test so that a failure lists them all.</summary>
    private sealed class Check
    {
        private readonly List<string> _failures = [];

        /// <summary>The C value under <paramref name="key"/> equals the C# value.</summary>
        public void Equal(string key, long csharp)
        {
            if (!C.Value.TryGetValue(key, out long c)) _failures.Add($"{key}: not printed by layout.c");
            else if (c != csharp) _failures.Add($"{key}: C says {c}, C# says {csharp}");
        }

        public void Equal(string what, long csharp, long expected)
        {
            if (csharp != expected) _failures.Add($"{what}: expected {expected}, C# says {csharp}");
        }

        /// <summary>Offset and size of each mapped field.</summary>
        public void Fields<[DynamicallyAccessedMembers(AllFields)] T>(string cStruct, params (string C, string CSharp)[] fields) where T : struct
        {
            foreach (var (cName, csName) in fields)
            {
                var field = typeof(T).GetField(csName, BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance);
                if (field is null) { _failures.Add($"{typeof(T).Name}.{csName}: no such field"); continue; }
                Equal($"off:{cStruct}.{cName}", (long)Marshal.OffsetOf<T>(csName));
                Equal($"size:{cStruct}.{cName}", field.FieldType.IsPointer ? IntPtr.Size : RuntimeHelpers.SizeOf(field.FieldType.TypeHandle));
            }
        }

        /// <summary>Every field and the whole size: the C# struct is the C struct.</summary>
        public void Struct<[DynamicallyAccessedMembers(AllFields)] T>(string cStruct, params (string C, string CSharp)[] fields) where T : struct
        {
            Fields<T>(cStruct, fields);
            int declared = typeof(T).GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance).Length;
            if (declared != fields.Length) _failures.Add($"{typeof(T).Name}: {declared} fields in C#, {fields.Length} checked");
            Equal($"sizeof:{cStruct}", Unsafe.SizeOf<T>());
            Equal($"sizeof:{cStruct}", Marshal.SizeOf<T>());
        }

        /// <summary>The C# struct reaches the end of the given C field.</summary>
        public void SizeCovers<T>(string cStruct, string lastField)
        {
            long end = C.Value[$"off:{cStruct}.{lastField}"] + C.Value[$"size:{cStruct}.{lastField}"];
            if (Unsafe.SizeOf<T>() < end) _failures.Add($"{typeof(T).Name}: {Unsafe.SizeOf<T>()} bytes do not reach the end of {cStruct}.{lastField} ({end})");
        }

        /// <summary>The C# struct is no larger than the C one.</summary>
        public void SizeWithin<T>(string cStruct)
        {
            long size = C.Value[$"sizeof:{cStruct}"];
            if (Unsafe.SizeOf<T>() > size) _failures.Add($"{typeof(T).Name}: {Unsafe.SizeOf<T>()} bytes, larger than {cStruct} ({size})");
        }

        public void Assert() => Xunit.Assert.True(_failures.Count == 0, string.Join(Environment.NewLine, _failures));
    }

    private static Dictionary<string, long> CompileAndRun()
    {
        string source = Path.Combine(AppContext.BaseDirectory, "Unit", "layout.c");
        if (!File.Exists(source))
            throw new FileNotFoundException($"layout.c was not copied next to the tests ({source}); check Via.Tests.csproj", source);
        string compiler = Environment.GetEnvironmentVariable("CC") is { Length: > 0 } cc ? cc : "gcc";
        string dir = Directory.CreateTempSubdirectory("via-layout-").FullName;
        try
        {
            string exe = Path.Combine(dir, "layout");
            var (code, _, err) = Run(compiler, ["-Wall", "-Werror", "-std=gnu11", "-o", exe, source],
                $"LayoutTests need a C compiler ('{compiler}') and the kernel headers (packages gcc and linux-libc-dev) to check struct layouts; install them");
            if (code != 0) throw new InvalidOperationException($"{compiler} could not compile {source} (exit {code}):\n{err}");
            var (runCode, output, runErr) = Run(exe, [], "the compiled layout program could not be started");
            if (runCode != 0) throw new InvalidOperationException($"layout program failed (exit {runCode}):\n{runErr}");
            var values = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = line.Split(' ');
                if (parts.Length != 2 || !long.TryParse(parts[1], out long value) || !values.TryAdd(parts[0], value))
                    throw new InvalidDataException($"layout program printed an unexpected or repeated line: '{line}'");
            }
            return values;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static (int Code, string Output, string Error) Run(string file, string[] args, string whenMissing)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new InvalidOperationException($"{file}: not started; {whenMissing}");
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"{file}: {e.Message}; {whenMissing}", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            return (process.ExitCode, stdout.Result, stderr.Result);
        }
    }
}
