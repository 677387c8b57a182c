// The seccomp filter of the seccomp mechanism (see src/Via.Mechanisms/Seccomp/): included by
// via_spawn.c, which installs it in the clone3 child just before execve, and by the supervisor's
// tests. Classic BPF over struct seccomp_data; the supervisor is bin/via-seccomp (via_seccomp.c).
//
// What it does, for the program and every descendant (filters are inherited by fork and kept by
// execve, also of set-id binaries, since via installs it with CAP_SYS_ADMIN and no NO_NEW_PRIVS):
//   socket(AF_INET|AF_INET6, ...)            USER_NOTIF: the supervisor creates the socket, marks
//                                            it and installs it in the caller (ADDFD_FLAG_SEND)
//   setsockopt(SOL_SOCKET, SO_MARK |         EPERM: the mark must stay, and no device binding
//     SO_BINDTODEVICE | SO_BINDTOIFINDEX |   picks another way out (DESIGN.md, points 10 and 11;
//     SO_DONTROUTE), IP_UNICAST_IF,          the same options the cgroup mechanism's setsockopt
//     IPV6_UNICAST_IF                        guard refuses). Per-message choices (IP_PKTINFO...)
//                                            are the egress guard's, where cgroup eBPF is allowed
//   io_uring_setup                           ENOSYS: IORING_OP_SOCKET (5.19) makes sockets that no
//                                            socket() call shows; programs fall back to plain
//                                            syscalls on ENOSYS (Docker's default profile refuses it too)
//   unshare/clone with CLONE_NEWNET,         EPERM: the supervisor creates sockets in the network
//   setns to a network (or any) namespace    namespace the program started in; a program that
//                                            made or joined another one would get sockets of the
//                                            host's namespace there (a sandbox that cuts a child's
//                                            network with an empty namespace would be undone)
//   seccomp(SECCOMP_SET_MODE_FILTER,         EPERM: of two filters answering USER_NOTIF, the newer
//     SECCOMP_FILTER_FLAG_NEW_LISTENER)      one's listener decides, and could let socket() go on
//                                            untagged (SECCOMP_USER_NOTIF_FLAG_CONTINUE); filters
//                                            without a listener stack harmlessly
//   clone3                                   ENOSYS: its flags are in memory, which a filter cannot
//                                            read; glibc, Rust and Go fall back to clone (as under
//                                            Docker's default profile, which does the same)
//   the i386 ABI on x86_64                   the same rules with its numbers; socketcall (the old
//                                            multiplexer, arguments in memory): EPERM
//   the x32 ABI, any other architecture      ENOSYS for every call (fail closed: its numbers are
//                                            not checked)
// Everything else is allowed.
//
// If no supervisor listens (it exited or was killed, or via died before starting it), the kernel
// answers a USER_NOTIF with ENOSYS: the program can open no new socket, which is the fail-closed
// behaviour the mechanism promises.
#ifndef VIA_SECCOMP_FILTER_H
#define VIA_SECCOMP_FILTER_H

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#ifndef SO_BINDTOIFINDEX
#define SO_BINDTOIFINDEX 62
#endif
#ifndef IP_UNICAST_IF
#define IP_UNICAST_IF 50
#endif
#ifndef IPV6_UNICAST_IF
#define IPV6_UNICAST_IF 76
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

// Offsets in struct seccomp_data of the low 32 bits of args[i] (the kernel reads int arguments
// from the low half only, so the high half must not decide anything).
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define VIA_ARG_LO(i) ((unsigned)(offsetof(struct seccomp_data, args) + 8 * (i)))
#else
#define VIA_ARG_LO(i) ((unsigned)(offsetof(struct seccomp_data, args) + 8 * (i) + 4))
#endif

#define VIA_RET_ERRNO(e) (SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))

// The syscall numbers one ABI's block checks; -1: the ABI has no such call.
struct via_abi {
    int socket, setsockopt, socketcall, io_uring_setup, clone3, unshare, clone, setns, seccomp;
};

// A small assembler with forward labels, so that the blocks read as the table above.
enum {
    VIA_L_NOTIFY, VIA_L_ALLOW, VIA_L_EPERM, VIA_L_ENOSYS, VIA_L_SOCKET, VIA_L_SETSOCKOPT, VIA_L_SETSOCKOPT_IP,
    VIA_L_SETSOCKOPT_IP6, VIA_L_NEWNET, VIA_L_SETNS, VIA_L_SECCOMP, VIA_L_COUNT
};

struct via_asm {
    struct sock_filter *insn;
    int n, cap, failed;
    int label[VIA_L_COUNT];
    struct { int at, label_t, label_f; } fix[48];
    int nfix;
};

static void via_emit(struct via_asm *a, unsigned short code, unsigned k)
{
    if (a->n >= a->cap) { a->failed = 1; return; }
    a->insn[a->n++] = (struct sock_filter)BPF_STMT(code, k);
}

// Jump if (A == k) (or A & k with BPF_JSET) to label t, else to label f (-1: the next instruction).
static void via_jump(struct via_asm *a, unsigned short op, unsigned k, int t, int f)
{
    if (a->nfix >= (int)(sizeof a->fix / sizeof a->fix[0])) { a->failed = 1; return; }
    a->fix[a->nfix].at = a->n;
    a->fix[a->nfix].label_t = t;
    a->fix[a->nfix++].label_f = f;
    via_emit(a, BPF_JMP | op | BPF_K, k);
}

static void via_bind(struct via_asm *a, int label) { a->label[label] = a->n; }

static int via_resolve(struct via_asm *a)
{
    for (int i = 0; i < a->nfix && !a->failed; i++) {
        int at = a->fix[i].at;
        int t = a->fix[i].label_t < 0 ? at + 1 : a->label[a->fix[i].label_t];
        int f = a->fix[i].label_f < 0 ? at + 1 : a->label[a->fix[i].label_f];
        if (t <= at || f <= at || t - at - 1 > 255 || f - at - 1 > 255) a->failed = 1; // forward, 8-bit
        else {
            a->insn[at].jt = (unsigned char)(t - at - 1);
            a->insn[at].jf = (unsigned char)(f - at - 1);
        }
    }
    return a->failed ? -1 : a->n;
}

// One ABI: the syscall number is in A.
static void via_abi_block(struct via_asm *a, const struct via_abi *abi)
{
    for (int i = 0; i < VIA_L_COUNT; i++) a->label[i] = -1;
    a->nfix = 0;
    if (abi->socket >= 0) via_jump(a, BPF_JEQ, (unsigned)abi->socket, VIA_L_SOCKET, -1);
    if (abi->setsockopt >= 0) via_jump(a, BPF_JEQ, (unsigned)abi->setsockopt, VIA_L_SETSOCKOPT, -1);
    if (abi->socketcall >= 0) via_jump(a, BPF_JEQ, (unsigned)abi->socketcall, VIA_L_EPERM, -1);
    if (abi->io_uring_setup >= 0) via_jump(a, BPF_JEQ, (unsigned)abi->io_uring_setup, VIA_L_ENOSYS, -1);
    if (abi->clone3 >= 0) via_jump(a, BPF_JEQ, (unsigned)abi->clone3, VIA_L_ENOSYS, -1);
    if (abi->unshare >= 0) via_jump(a, BPF_JEQ, (unsigned)abi->unshare, VIA_L_NEWNET, -1);
    if (abi->clone >= 0) via_jump(a, BPF_JEQ, (unsigned)abi->clone, VIA_L_NEWNET, -1);
    if (abi->setns >= 0) via_jump(a, BPF_JEQ, (unsigned)abi->setns, VIA_L_SETNS, -1);
    if (abi->seccomp >= 0) via_jump(a, BPF_JEQ, (unsigned)abi->seccomp, VIA_L_SECCOMP, -1);
    via_emit(a, BPF_RET | BPF_K, SECCOMP_RET_ALLOW); // any other call

    via_bind(a, VIA_L_SOCKET); // socket(domain, type, protocol)
    via_emit(a, BPF_LD | BPF_W | BPF_ABS, VIA_ARG_LO(0));
    via_jump(a, BPF_JEQ, AF_INET, VIA_L_NOTIFY, -1);
    via_jump(a, BPF_JEQ, AF_INET6, VIA_L_NOTIFY, VIA_L_ALLOW);

    via_bind(a, VIA_L_SETSOCKOPT); // setsockopt(fd, level, optname, ...)
    via_emit(a, BPF_LD | BPF_W | BPF_ABS, VIA_ARG_LO(1));
    via_jump(a, BPF_JEQ, SOL_SOCKET, -1, VIA_L_SETSOCKOPT_IP);
    via_emit(a, BPF_LD | BPF_W | BPF_ABS, VIA_ARG_LO(2));
    via_jump(a, BPF_JEQ, SO_MARK, VIA_L_EPERM, -1);
    via_jump(a, BPF_JEQ, SO_BINDTODEVICE, VIA_L_EPERM, -1);
    via_jump(a, BPF_JEQ, SO_BINDTOIFINDEX, VIA_L_EPERM, -1);
    via_jump(a, BPF_JEQ, SO_DONTROUTE, VIA_L_EPERM, VIA_L_ALLOW);
    // IP_UNICAST_IF / IPV6_UNICAST_IF name an interface; the value is in memory, which a filter
    // cannot read, so any is refused (the cgroup mechanism's guard lets 0 and IFACE pass).
    via_bind(a, VIA_L_SETSOCKOPT_IP);
    via_jump(a, BPF_JEQ, IPPROTO_IP, -1, VIA_L_SETSOCKOPT_IP6);
    via_emit(a, BPF_LD | BPF_W | BPF_ABS, VIA_ARG_LO(2));
    via_jump(a, BPF_JEQ, IP_UNICAST_IF, VIA_L_EPERM, VIA_L_ALLOW);
    via_bind(a, VIA_L_SETSOCKOPT_IP6);
    via_jump(a, BPF_JEQ, IPPROTO_IPV6, -1, VIA_L_ALLOW);
    via_emit(a, BPF_LD | BPF_W | BPF_ABS, VIA_ARG_LO(2));
    via_jump(a, BPF_JEQ, IPV6_UNICAST_IF, VIA_L_EPERM, VIA_L_ALLOW);

    via_bind(a, VIA_L_NEWNET); // unshare(flags), clone(flags, ...): flags is the first argument on x86 and arm64
    via_emit(a, BPF_LD | BPF_W | BPF_ABS, VIA_ARG_LO(0));
    via_jump(a, BPF_JSET, CLONE_NEWNET, VIA_L_EPERM, VIA_L_ALLOW);

    via_bind(a, VIA_L_SETNS); // setns(fd, nstype): 0 joins whatever the fd is, a pidfd joins the types named
    via_emit(a, BPF_LD | BPF_W | BPF_ABS, VIA_ARG_LO(1));
    via_jump(a, BPF_JEQ, 0, VIA_L_EPERM, -1);
    via_jump(a, BPF_JSET, CLONE_NEWNET, VIA_L_EPERM, VIA_L_ALLOW);

    via_bind(a, VIA_L_SECCOMP); // seccomp(op, flags, args): a filter of the program's own with a listener
    via_emit(a, BPF_LD | BPF_W | BPF_ABS, VIA_ARG_LO(0));
    via_jump(a, BPF_JEQ, SECCOMP_SET_MODE_FILTER, -1, VIA_L_ALLOW);
    via_emit(a, BPF_LD | BPF_W | BPF_ABS, VIA_ARG_LO(1));
    via_jump(a, BPF_JSET, SECCOMP_FILTER_FLAG_NEW_LISTENER, VIA_L_EPERM, VIA_L_ALLOW);

    // Classic BPF jumps forward only: the answers come last.
    via_bind(a, VIA_L_ALLOW);
    via_emit(a, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    via_bind(a, VIA_L_NOTIFY);
    via_emit(a, BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
    via_bind(a, VIA_L_EPERM);
    via_emit(a, BPF_RET | BPF_K, VIA_RET_ERRNO(EPERM));
    via_bind(a, VIA_L_ENOSYS);
    via_emit(a, BPF_RET | BPF_K, VIA_RET_ERRNO(ENOSYS));
    via_resolve(a);
}

// Builds the filter into insn (room for cap instructions); returns the count, or -1.
static int via_seccomp_filter(struct sock_filter *insn, int cap)
{
    struct via_asm a;
    a.insn = insn;
    a.n = 0;
    a.cap = cap;
    a.failed = 0;
#if defined(__x86_64__)
    static const struct via_abi native = {
        __NR_socket, __NR_setsockopt, -1, __NR_io_uring_setup, __NR_clone3, __NR_unshare, __NR_clone, __NR_setns, __NR_seccomp,
    };
    // i386 numbers (arch/x86/entry/syscalls/syscall_32.tbl); socket and setsockopt are direct calls since 4.3.
    static const struct via_abi i386 = { 359, 366, 102, 425, 435, 310, 120, 346, 354 };
    //  0  A = arch
    //  1  arch == x86_64 ? next : i386 check
    //  2  A = nr
    //  3  nr >= __X32_SYSCALL_BIT (the x32 ABI) ? next : native block
    //  4  return ENOSYS
    //  5  native block
    //     i386 check: arch == i386 ? i386 block : return ENOSYS (any other architecture)
    via_emit(&a, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    via_emit(&a, BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64); // jf patched below
    via_emit(&a, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    via_emit(&a, BPF_JMP | BPF_JGE | BPF_K, 0x40000000u);
    a.insn[3].jt = 0;
    a.insn[3].jf = 1;
    via_emit(&a, BPF_RET | BPF_K, VIA_RET_ERRNO(ENOSYS));
    via_abi_block(&a, &native);
    if (a.failed || a.n - 2 > 255) return -1;
    a.insn[1].jt = 0;
    a.insn[1].jf = (unsigned char)(a.n - 2);
    via_emit(&a, BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386);
    a.insn[a.n - 1].jt = 1;
    a.insn[a.n - 1].jf = 0;
    via_emit(&a, BPF_RET | BPF_K, VIA_RET_ERRNO(ENOSYS));
    via_emit(&a, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    via_abi_block(&a, &i386);
#elif defined(__aarch64__)
    static const struct via_abi native = {
        __NR_socket, __NR_setsockopt, -1, __NR_io_uring_setup, __NR_clone3, __NR_unshare, __NR_clone, __NR_setns, __NR_seccomp,
    };
    via_emit(&a, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    via_emit(&a, BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_AARCH64);
    a.insn[a.n - 1].jt = 1;
    a.insn[a.n - 1].jf = 0;
    via_emit(&a, BPF_RET | BPF_K, VIA_RET_ERRNO(ENOSYS)); // the 32-bit ABI: not checked, refused
    via_emit(&a, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    via_abi_block(&a, &native);
#else
#error "via's seccomp filter knows x86_64 and aarch64"
#endif
    return a.failed ? -1 : a.n;
}

#endif
