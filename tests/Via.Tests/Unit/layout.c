/*
 * Prints the layouts and constants of the kernel and libc ABI that via declares in C#, as
 * "KEY VALUE" lines, so LayoutTests can compare them with the C# declarations. Compiled with gcc
 * at test time against the installed uapi headers (linux-libc-dev) and glibc.
 *
 *   off:STRUCT.FIELD   offsetof
 *   size:STRUCT.FIELD  sizeof the field
 *   sizeof:STRUCT      sizeof the whole struct
 *   const:NAME         an integer constant
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/file.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/sched.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <linux/fib_rules.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>

#define FIELD(type, label, member)                                                        \
	printf("off:%s.%s %zu\n", label, #member, offsetof(type, member));                    \
	printf("size:%s.%s %zu\n", label, #member, sizeof(((type *)0)->member))
#define SIZE(type, label) printf("sizeof:%s %zu\n", label, sizeof(type))
#define CONST(name) printf("const:%s %lld\n", #name, (long long)(name))

int main(void)
{
	/* union bpf_attr, BPF_PROG_LOAD */
	SIZE(union bpf_attr, "bpf_attr");
	FIELD(union bpf_attr, "bpf_attr", prog_type);
	FIELD(union bpf_attr, "bpf_attr", insn_cnt);
	FIELD(union bpf_attr, "bpf_attr", insns);
	FIELD(union bpf_attr, "bpf_attr", license);
	FIELD(union bpf_attr, "bpf_attr", log_level);
	FIELD(union bpf_attr, "bpf_attr", log_size);
	FIELD(union bpf_attr, "bpf_attr", log_buf);
	FIELD(union bpf_attr, "bpf_attr", kern_version);
	FIELD(union bpf_attr, "bpf_attr", prog_flags);
	FIELD(union bpf_attr, "bpf_attr", prog_name);
	FIELD(union bpf_attr, "bpf_attr", prog_ifindex);
	FIELD(union bpf_attr, "bpf_attr", expected_attach_type);
	/* BPF_PROG_ATTACH / BPF_PROG_DETACH */
	FIELD(union bpf_attr, "bpf_attr", target_fd);
	FIELD(union bpf_attr, "bpf_attr", attach_bpf_fd);
	FIELD(union bpf_attr, "bpf_attr", attach_type);
	FIELD(union bpf_attr, "bpf_attr", attach_flags);
	FIELD(union bpf_attr, "bpf_attr", replace_bpf_fd);
	/* BPF_PROG_QUERY */
	FIELD(union bpf_attr, "bpf_attr", query.target_fd);
	FIELD(union bpf_attr, "bpf_attr", query.attach_type);
	FIELD(union bpf_attr, "bpf_attr", query.query_flags);
	FIELD(union bpf_attr, "bpf_attr", query.attach_flags);
	FIELD(union bpf_attr, "bpf_attr", query.prog_ids);
	FIELD(union bpf_attr, "bpf_attr", query.prog_cnt);
	/* BPF_PROG_GET_FD_BY_ID */
	FIELD(union bpf_attr, "bpf_attr", prog_id);
	FIELD(union bpf_attr, "bpf_attr", next_id);
	FIELD(union bpf_attr, "bpf_attr", open_flags);
	/* BPF_MAP_CREATE */
	FIELD(union bpf_attr, "bpf_attr", map_type);
	FIELD(union bpf_attr, "bpf_attr", key_size);
	FIELD(union bpf_attr, "bpf_attr", value_size);
	FIELD(union bpf_attr, "bpf_attr", max_entries);
	FIELD(union bpf_attr, "bpf_attr", map_flags);
	FIELD(union bpf_attr, "bpf_attr", map_name);
	/* BPF_MAP_LOOKUP_ELEM */
	FIELD(union bpf_attr, "bpf_attr", map_fd);
	FIELD(union bpf_attr, "bpf_attr", key);
	FIELD(union bpf_attr, "bpf_attr", value);
	FIELD(union bpf_attr, "bpf_attr", flags);
	/* BPF_OBJ_GET_INFO_BY_FD */
	FIELD(union bpf_attr, "bpf_attr", info.bpf_fd);
	FIELD(union bpf_attr, "bpf_attr", info.info_len);
	FIELD(union bpf_attr, "bpf_attr", info.info);

	SIZE(struct bpf_prog_info, "bpf_prog_info");
	FIELD(struct bpf_prog_info, "bpf_prog_info", type);
	FIELD(struct bpf_prog_info, "bpf_prog_info", id);
	FIELD(struct bpf_prog_info, "bpf_prog_info", nr_map_ids);
	FIELD(struct bpf_prog_info, "bpf_prog_info", map_ids);
	FIELD(struct bpf_prog_info, "bpf_prog_info", name);

	SIZE(struct bpf_map_info, "bpf_map_info");
	FIELD(struct bpf_map_info, "bpf_map_info", type);
	FIELD(struct bpf_map_info, "bpf_map_info", id);
	FIELD(struct bpf_map_info, "bpf_map_info", key_size);
	FIELD(struct bpf_map_info, "bpf_map_info", value_size);
	FIELD(struct bpf_map_info, "bpf_map_info", max_entries);
	FIELD(struct bpf_map_info, "bpf_map_info", name);

	SIZE(struct __sk_buff, "__sk_buff");
	FIELD(struct __sk_buff, "__sk_buff", len);
	FIELD(struct __sk_buff, "__sk_buff", ifindex);
	FIELD(struct __sk_buff, "__sk_buff", gso_segs);

	SIZE(struct bpf_sock_addr, "bpf_sock_addr");
	FIELD(struct bpf_sock_addr, "bpf_sock_addr", user_family);
	FIELD(struct bpf_sock_addr, "bpf_sock_addr", user_ip4);
	FIELD(struct bpf_sock_addr, "bpf_sock_addr", user_ip6);
	FIELD(struct bpf_sock_addr, "bpf_sock_addr", user_port);

	SIZE(struct bpf_sock, "bpf_sock");
	FIELD(struct bpf_sock, "bpf_sock", bound_dev_if);
	FIELD(struct bpf_sock, "bpf_sock", family);
	FIELD(struct bpf_sock, "bpf_sock", type);
	FIELD(struct bpf_sock, "bpf_sock", protocol);
	FIELD(struct bpf_sock, "bpf_sock", mark);
	FIELD(struct bpf_sock, "bpf_sock", priority);

	SIZE(struct bpf_sockopt, "bpf_sockopt");
	FIELD(struct bpf_sockopt, "bpf_sockopt", sk);
	FIELD(struct bpf_sockopt, "bpf_sockopt", optval);
	FIELD(struct bpf_sockopt, "bpf_sockopt", optval_end);
	FIELD(struct bpf_sockopt, "bpf_sockopt", level);
	FIELD(struct bpf_sockopt, "bpf_sockopt", optname);
	FIELD(struct bpf_sockopt, "bpf_sockopt", optlen);
	FIELD(struct bpf_sockopt, "bpf_sockopt", retval);

	SIZE(struct bpf_insn, "bpf_insn");

	/* netlink */
	SIZE(struct nlmsghdr, "nlmsghdr");
	FIELD(struct nlmsghdr, "nlmsghdr", nlmsg_len);
	FIELD(struct nlmsghdr, "nlmsghdr", nlmsg_type);
	FIELD(struct nlmsghdr, "nlmsghdr", nlmsg_flags);
	FIELD(struct nlmsghdr, "nlmsghdr", nlmsg_seq);
	FIELD(struct nlmsghdr, "nlmsghdr", nlmsg_pid);

	SIZE(struct rtmsg, "rtmsg");
	FIELD(struct rtmsg, "rtmsg", rtm_family);
	FIELD(struct rtmsg, "rtmsg", rtm_dst_len);
	FIELD(struct rtmsg, "rtmsg", rtm_src_len);
	FIELD(struct rtmsg, "rtmsg", rtm_tos);
	FIELD(struct rtmsg, "rtmsg", rtm_table);
	FIELD(struct rtmsg, "rtmsg", rtm_protocol);
	FIELD(struct rtmsg, "rtmsg", rtm_scope);
	FIELD(struct rtmsg, "rtmsg", rtm_type);
	FIELD(struct rtmsg, "rtmsg", rtm_flags);

	SIZE(struct fib_rule_hdr, "fib_rule_hdr");
	FIELD(struct fib_rule_hdr, "fib_rule_hdr", family);
	FIELD(struct fib_rule_hdr, "fib_rule_hdr", dst_len);
	FIELD(struct fib_rule_hdr, "fib_rule_hdr", src_len);
	FIELD(struct fib_rule_hdr, "fib_rule_hdr", tos);
	FIELD(struct fib_rule_hdr, "fib_rule_hdr", table);
	FIELD(struct fib_rule_hdr, "fib_rule_hdr", res1);
	FIELD(struct fib_rule_hdr, "fib_rule_hdr", res2);
	FIELD(struct fib_rule_hdr, "fib_rule_hdr", action);
	FIELD(struct fib_rule_hdr, "fib_rule_hdr", flags);

	SIZE(struct ifinfomsg, "ifinfomsg");
	FIELD(struct ifinfomsg, "ifinfomsg", ifi_family);
	FIELD(struct ifinfomsg, "ifinfomsg", __ifi_pad);
	FIELD(struct ifinfomsg, "ifinfomsg", ifi_type);
	FIELD(struct ifinfomsg, "ifinfomsg", ifi_index);
	FIELD(struct ifinfomsg, "ifinfomsg", ifi_flags);
	FIELD(struct ifinfomsg, "ifinfomsg", ifi_change);

	SIZE(struct rtnexthop, "rtnexthop");
	FIELD(struct rtnexthop, "rtnexthop", rtnh_len);
	FIELD(struct rtnexthop, "rtnexthop", rtnh_flags);
	FIELD(struct rtnexthop, "rtnexthop", rtnh_hops);
	FIELD(struct rtnexthop, "rtnexthop", rtnh_ifindex);
	SIZE(struct ifaddrmsg, "ifaddrmsg");
	FIELD(struct ifaddrmsg, "ifaddrmsg", ifa_family);
	FIELD(struct ifaddrmsg, "ifaddrmsg", ifa_prefixlen);
	FIELD(struct ifaddrmsg, "ifaddrmsg", ifa_flags);
	FIELD(struct ifaddrmsg, "ifaddrmsg", ifa_scope);
	FIELD(struct ifaddrmsg, "ifaddrmsg", ifa_index);

	SIZE(struct nlmsgerr, "nlmsgerr");
	FIELD(struct nlmsgerr, "nlmsgerr", error);
	FIELD(struct nlmsgerr, "nlmsgerr", msg);

	SIZE(struct sockaddr_nl, "sockaddr_nl");
	FIELD(struct sockaddr_nl, "sockaddr_nl", nl_family);
	FIELD(struct sockaddr_nl, "sockaddr_nl", nl_pad);
	FIELD(struct sockaddr_nl, "sockaddr_nl", nl_pid);
	FIELD(struct sockaddr_nl, "sockaddr_nl", nl_groups);

	/* glibc */
	SIZE(struct passwd, "passwd");
	FIELD(struct passwd, "passwd", pw_name);
	FIELD(struct passwd, "passwd", pw_passwd);
	FIELD(struct passwd, "passwd", pw_uid);
	FIELD(struct passwd, "passwd", pw_gid);
	FIELD(struct passwd, "passwd", pw_gecos);
	FIELD(struct passwd, "passwd", pw_dir);
	FIELD(struct passwd, "passwd", pw_shell);
	SIZE(struct group, "group");
	FIELD(struct group, "group", gr_name);
	FIELD(struct group, "group", gr_passwd);
	FIELD(struct group, "group", gr_gid);

	/* struct stat: Namespaces reads st_ino by offset; setns takes CLONE_NEWNET */
	printf("const:STAT_INO_OFFSET %zu\n", offsetof(struct stat, st_ino));
	printf("const:STAT_INO_SIZE %zu\n", sizeof(((struct stat *)0)->st_ino));
	printf("const:SIZEOF_STAT %zu\n", sizeof(struct stat));
	CONST(CLONE_NEWNET);

	/* rtnetlink message types, flags, attributes */
	CONST(RTM_NEWLINK); CONST(RTM_GETLINK); CONST(RTM_NEWADDR); CONST(RTM_GETADDR);
	CONST(RTM_NEWROUTE); CONST(RTM_DELROUTE); CONST(RTM_GETROUTE);
	CONST(RTM_NEWRULE); CONST(RTM_DELRULE); CONST(RTM_GETRULE);
	CONST(NLMSG_ERROR); CONST(NLMSG_DONE);
	CONST(NLM_F_REQUEST); CONST(NLM_F_MULTI); CONST(NLM_F_ACK); CONST(NLM_F_DUMP);
	CONST(NLM_F_EXCL); CONST(NLM_F_CREATE); CONST(NLM_F_ACK_TLVS); CONST(NLM_F_CAPPED);
	CONST(NLMSGERR_ATTR_MSG);
	CONST(RTA_DST); CONST(RTA_OIF); CONST(RTA_GATEWAY); CONST(RTA_PRIORITY); CONST(RTA_PREFSRC); CONST(RTA_TABLE); CONST(RTA_MULTIPATH);
	CONST(FRA_SRC); CONST(FRA_PRIORITY); CONST(FRA_FWMARK); CONST(FRA_TABLE); CONST(FRA_FWMASK); CONST(FRA_PROTOCOL);
	CONST(IFLA_IFNAME); CONST(IFA_ADDRESS); CONST(IFA_LOCAL);
	CONST(RT_TABLE_COMPAT); CONST(RT_TABLE_MAIN);
	CONST(FR_ACT_TO_TBL); CONST(FR_ACT_UNREACHABLE);
	CONST(RTN_UNICAST); CONST(RTN_LOCAL); CONST(RTN_BROADCAST); CONST(RTN_UNREACHABLE);
	CONST(RT_SCOPE_UNIVERSE); CONST(RT_SCOPE_LINK); CONST(RT_SCOPE_HOST);
	CONST(IFF_UP); CONST(IFF_LOOPBACK); CONST(IFF_POINTOPOINT); CONST(IFF_RUNNING); CONST(IFF_LOWER_UP);
	CONST(AF_INET); CONST(AF_INET6); CONST(AF_NETLINK); CONST(NETLINK_ROUTE);
	CONST(SOCK_RAW); CONST(SOCK_CLOEXEC); CONST(SOL_NETLINK); CONST(NETLINK_EXT_ACK);
	CONST(NETLINK_ADD_MEMBERSHIP); CONST(RTNLGRP_LINK); CONST(RTNLGRP_IPV4_IFADDR); CONST(RTNLGRP_IPV4_ROUTE);
	CONST(RTNLGRP_IPV4_RULE); CONST(RTNLGRP_IPV6_IFADDR); CONST(RTNLGRP_IPV6_ROUTE); CONST(RTNLGRP_IPV6_RULE);
	CONST(POLLIN); CONST(MSG_DONTWAIT); CONST(ENOBUFS);

	/* bpf */
	CONST(BPF_PROG_LOAD); CONST(BPF_PROG_ATTACH); CONST(BPF_PROG_DETACH); CONST(BPF_PROG_GET_FD_BY_ID);
	CONST(BPF_OBJ_GET_INFO_BY_FD); CONST(BPF_PROG_QUERY);
	CONST(BPF_PROG_TYPE_CGROUP_SOCK); CONST(BPF_PROG_TYPE_CGROUP_SOCKOPT);
	CONST(BPF_CGROUP_INET_SOCK_CREATE); CONST(BPF_CGROUP_SETSOCKOPT);
	CONST(BPF_F_ALLOW_MULTI); CONST(BPF_OBJ_NAME_LEN);
	CONST(BPF_MAP_CREATE); CONST(BPF_MAP_LOOKUP_ELEM); CONST(BPF_MAP_GET_FD_BY_ID);
	CONST(BPF_PROG_TYPE_CGROUP_SKB); CONST(BPF_PROG_TYPE_CGROUP_SOCK_ADDR);
	CONST(BPF_CGROUP_INET_INGRESS); CONST(BPF_CGROUP_INET_EGRESS); CONST(BPF_CGROUP_INET6_CONNECT);
	CONST(BPF_MAP_TYPE_ARRAY); CONST(BPF_MAP_TYPE_PERCPU_ARRAY); CONST(BPF_MAP_TYPE_HASH);
	CONST(BPF_MAP_UPDATE_ELEM); CONST(BPF_MAP_DELETE_ELEM);
	CONST(BPF_FUNC_map_lookup_elem); CONST(BPF_FUNC_setsockopt);
	CONST(BPF_FUNC_get_current_uid_gid); CONST(BPF_FUNC_get_current_comm); CONST(BPF_FUNC_get_netns_cookie);
	CONST(SO_NETNS_COOKIE);
	CONST(SOL_SOCKET); CONST(SO_BINDTOIFINDEX); CONST(SO_DONTROUTE); CONST(SO_MARK); CONST(SO_BINDTODEVICE);
	CONST(IPPROTO_IP); CONST(IPPROTO_IPV6); CONST(IP_UNICAST_IF); CONST(IPV6_UNICAST_IF);
	CONST(__NR_bpf);
	/* eBPF instruction encoding (bpf_common.h, bpf.h) */
	CONST(BPF_LD); CONST(BPF_IMM); CONST(BPF_ATOMIC); CONST(BPF_ADD); CONST(BPF_AND); CONST(BPF_CALL); CONST(BPF_PSEUDO_MAP_FD);
	CONST(BPF_LDX); CONST(BPF_ST); CONST(BPF_STX); CONST(BPF_JMP); CONST(BPF_ALU64);
	CONST(BPF_MEM); CONST(BPF_K); CONST(BPF_X); CONST(BPF_MOV); CONST(BPF_JA); CONST(BPF_EXIT);
	CONST(BPF_W); CONST(BPF_H); CONST(BPF_B); CONST(BPF_DW);
	CONST(BPF_JEQ); CONST(BPF_JGT); CONST(BPF_JGE); CONST(BPF_JNE);

	/* libc */
	CONST(O_RDONLY); CONST(O_WRONLY); CONST(O_RDWR); CONST(O_CREAT); CONST(O_CLOEXEC); CONST(O_DIRECTORY);
	CONST(LOCK_EX); CONST(LOCK_UN); CONST(SIG_SETMASK); CONST(SIGPIPE);
	CONST(EPERM); CONST(ENOENT); CONST(ESRCH); CONST(EINTR); CONST(EIO); CONST(ENOEXEC); CONST(EBADF);
	CONST(EAGAIN); CONST(ENOMEM); CONST(EACCES); CONST(EBUSY); CONST(EEXIST); CONST(ENOTDIR); CONST(ENODEV);
	CONST(EINVAL); CONST(ENOSPC); CONST(ENOTEMPTY); CONST(ENOTSUP); CONST(EOPNOTSUPP);
	CONST(EADDRNOTAVAIL); CONST(ENETUNREACH);
	return 0;
}
