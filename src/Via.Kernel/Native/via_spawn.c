// via_spawn: start a program directly inside a cgroup, with clone3(CLONE_INTO_CGROUP).
//
// Why native code: the child of a fork must not run managed code before execve (the .NET runtime's
// threads, locks and signal handlers are not the child's). Why clone3: moving a process by writing
// its pid to cgroup.procs takes the cgroup threadgroup rwsem for writing, which waits for an RCU
// grace period (8-15 ms measured here); a child born in the cgroup costs what a fork costs. The
// program is in the route's cgroup from its first instruction, so no socket is ever untagged.
//
// Linked statically into the NativeAOT binary (see Via.Cli.csproj); called through
// Via.Kernel.Processes.Spawn. Kernels before 5.7 answer ENOSYS or EINVAL, and via falls back to its
// launcher stage.
//
// Private mounts (the program's own /etc/resolv.conf and /etc/nsswitch.conf, see --dns) need a
// mount namespace of the program's own. unshare(CLONE_NEWNS) implies CLONE_FS, which the kernel
// refuses (EINVAL) to a process whose threads share their fs_struct: every .NET process. So both
// executors do it where only one thread exists: the clone3 child below, and, for the launcher
// stage, a constructor that runs before the .NET runtime starts its threads (via_launch_premain).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "seccomp_filter.h"

// Gives the calling (single-threaded) process a mount namespace of its own, in which nothing
// propagates back to the host (MS_SLAVE, as 'ip netns exec' does), and bind-mounts from[i] on on[i]
// (mount(2) follows a symlinked target, e.g. /etc/resolv.conf -> systemd-resolved's stub file).
// Returns 0, or -errno with *failed_index the mount that failed (-1: the namespace itself).
// Async-signal-safe: runs between clone3 and execve.
static int private_mounts(int n, char *const from[], char *const on[], int *failed_index)
{
    *failed_index = -1;
    if (n <= 0) return 0;
    if (syscall(SYS_unshare, CLONE_NEWNS) < 0) return -errno;
    if (mount("none", "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) return -errno;
    for (int i = 0; i < n; i++) {
        if (mount(from[i], on[i], NULL, MS_BIND, NULL) < 0) {
            *failed_index = i;
            return -errno;
        }
    }
    return 0;
}

// The launcher stage ('via __launch --mount-from SRC --mount-on DST ... -- PROGRAM'): its private
// mounts are made here, before main, while the process has one thread; the managed launcher asks
// via_launch_mounts() how it went. Other invocations of via are not touched.
static int premain_requested = 0, premain_errno = 0, premain_index = -1;

__attribute__((constructor)) static void via_launch_premain(int argc, char **argv, char **envp)
{
    (void)envp;
    if (argc < 2 || argv == NULL || strcmp(argv[1], "__launch") != 0) return;
    char *from[64], *on[64];
    int n = 0;
    char *pending = NULL;
    for (int i = 2; i + 1 < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (strcmp(argv[i], "--mount-from") == 0) pending = argv[i + 1];
        else if (strcmp(argv[i], "--mount-on") == 0 && pending != NULL && n < 64) {
            from[n] = pending;
            on[n++] = argv[i + 1];
            pending = NULL;
        }
    }
    if (n == 0) return;
    premain_requested = n;
    int r = private_mounts(n, from, on, &premain_index);
    premain_errno = r < 0 ? -r : 0;
}

// How the launcher stage's private mounts went: the number made (0 if none were asked for), or -1
// with *failed_errno and *failed_index (-1: the namespace) set.
int via_launch_mounts(int *failed_errno, int *failed_index)
{
    *failed_errno = premain_errno;
    *failed_index = premain_index;
    return premain_errno != 0 ? -1 : premain_requested;
}

// Installs the seccomp mechanism's filter (seccomp_filter.h) in the calling, single-threaded child
// and returns its listener fd, or -errno. Called as root before the credentials change, so no
// NO_NEW_PRIVS is needed (CAP_SYS_ADMIN allows the filter) and set-id programs keep working.
// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (5.19): once the supervisor has received a socket() call,
// a signal no longer interrupts it, so a program preempted by signals all the time (Go sends
// SIGURG every 10 ms) does not have its socket made, dropped and asked again; older kernels go without.
static int install_notify_filter(void)
{
    struct sock_filter insn[160];
    int n = via_seccomp_filter(insn, (int)(sizeof insn / sizeof insn[0]));
    if (n < 0) return -E2BIG;
    struct sock_fprog prog = { .len = (unsigned short)n, .filter = insn };
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                      SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
    if (fd < 0 && errno == EINVAL)
        fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    return fd < 0 ? -errno : (int)fd;
}

// The child's messages to the parent on a SOCK_SEQPACKET pair: {stage, errno, index}. Stage 0 with
// an fd attached (SCM_RIGHTS) hands over the seccomp listener; any other stage is a failure.
static void child_report(int sock, const int report[3], int fd)
{
    struct iovec iov = { .iov_base = (void *)report, .iov_len = 3 * sizeof(int) };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) { }
}

// What the child needs, on the parent's memory (shared: see clone3_vm).
struct child_args {
    const char *path;
    char *const *argv, *const *envp;
    int set_ids;
    unsigned uid, gid;
    int ngroups;
    const unsigned *groups;
    int nmounts;
    char *const *mount_from, *const *mount_on;
    int njoin;
    char *const *join_procs; // cgroup v1 cgroup.procs files to write 0 to first (the netcls mechanism's)
    int seccomp_listener, inherit_fd;
    int netns_fd; // >= 0: the network namespace to enter first (the netns mechanism's)
    int report_fd; // the child's end of a SOCK_SEQPACKET pair (child_report)
};

// The child, from clone3 to execve: async-signal-safe calls only. Returns only on failure (127),
// having written what failed to report_fd.
static int child_main(void *p)
{
    const struct child_args *c = p;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL); // also undoes the runtime's SIG_IGN of SIGPIPE
    sigset_t none;
    sigemptyset(&none);
    int report[3] = {0, 0, -1};
    // cgroup v1 cgroups to join (the netcls mechanism's net_cls cgroup), as root; then the network
    // namespace (the netns mechanism's), so that nothing the program does ever runs in the host's;
    // then the mounts, as root, before the credentials are dropped.
    for (int j = 0; j < c->njoin; j++) {
        int fd = open(c->join_procs[j], O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1) {
            report[0] = 6;
            report[1] = errno;
            report[2] = j;
            child_report(c->report_fd, report, -1);
            return 127;
        }
        close(fd);
    }
    if (c->netns_fd >= 0 && syscall(SYS_setns, c->netns_fd, CLONE_NEWNET) < 0) {
        report[0] = 5;
        report[1] = errno;
        child_report(c->report_fd, report, -1);
        return 127;
    }
    int r = private_mounts(c->nmounts, c->mount_from, c->mount_on, &report[2]);
    if (r < 0) {
        report[0] = 3;
        report[1] = -r;
        child_report(c->report_fd, report, -1);
        return 127;
    }
    if (c->inherit_fd >= 0 && fcntl(c->inherit_fd, F_SETFD, 0) < 0) {
        report[0] = 2;
        report[1] = errno;
        child_report(c->report_fd, report, -1);
        return 127;
    }
    if (c->seccomp_listener) {
        int fd = install_notify_filter();
        if (fd < 0) {
            report[0] = 4;
            report[1] = -fd;
            child_report(c->report_fd, report, -1);
            return 127;
        }
        child_report(c->report_fd, report, fd);
        close(fd);
    }
    // Raw syscalls, not glibc's setgroups/setresuid: those broadcast the change to every thread
    // the parent had (SIGSETXID) and wait for answers that never come in a forked child.
    if (c->set_ids && (syscall(SYS_setgroups, (size_t)c->ngroups, c->groups) < 0 ||
                       syscall(SYS_setresgid, c->gid, c->gid, c->gid) < 0 || syscall(SYS_setresuid, c->uid, c->uid, c->uid) < 0)) {
        report[0] = 1;
        report[1] = errno;
    } else {
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(c->path, c->argv, c->envp);
        report[0] = 2;
        report[1] = errno;
    }
    child_report(c->report_fd, report, -1);
    return 127;
}

#if defined(__x86_64__)
// clone3 with CLONE_VM | CLONE_VFORK, as posix_spawn does: the child runs child_main on a stack of
// its own in the parent's memory until it execs, and the parent waits meanwhile. A plain fork of
// via copies its page tables (tens of MB mapped by the .NET runtime) and leaves every page the
// parent writes afterwards to fault once more (copy-on-write); this copies nothing. A raw syscall
// with a new stack cannot return into C in the child, hence the few instructions of assembly
// (the kernel starts the child at stack + stack_size, with rax 0). Returns the pid or -errno.
static long clone3_vm(struct clone_args *args, int (*fn)(void *), void *arg)
{
    register long rax __asm__("rax") = SYS_clone3;
    register void *r12 __asm__("r12") = (void *)fn;
    register void *r13 __asm__("r13") = arg;
    __asm__ volatile(
        "syscall\n\t"
        "testq %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        "xorl %%ebp, %%ebp\n\t"
        "movq %%r13, %%rdi\n\t"
        "callq *%%r12\n\t"
        "movl %%eax, %%edi\n\t"
        "movl $60, %%eax\n\t" // exit(2): the child's own thread, never the parent's
        "syscall\n\t"
        "hlt\n\t"
        "1:\n\t"
        : "+r"(rax)
        : "D"(args), "S"(sizeof *args), "r"(r12), "r"(r13)
        : "rcx", "r11", "memory");
    return rax;
}
#endif

// Returns the child's pid, or -errno if no child was made. If the child failed before the program
// ran, *failed_stage says where (1: credentials, 2: execve, 3: private mounts, *failed_index
// which one, 4: the seccomp filter, 5: entering the network namespace netns_fd,
// 6: joining the cgroup v1 cgroup whose cgroup.procs is join_procs[*failed_index]) and *failed_errno why; the child has then exited with 127 and
// the caller reaps it.
// seccomp_listener: install the seccomp mechanism's filter (seccomp_filter.h) last before the
// credentials change, and return its listener in *listener_fd (close-on-exec; -1 if none). The
// child keeps no copy, so the supervisor that gets it is the only one.
// inherit_fd (>= 0): an fd of the caller's that the program inherits (its close-on-exec flag is
// cleared in the child only): the listener, given to the supervisor.
// join_procs: the cgroup.procs files of further cgroups (cgroup v1 hierarchies, e.g. the netcls
// mechanism's net_cls cgroup) the child joins, as root, before anything else: "0" is the writer.
// Stage 6 with the index names the one that failed.
int via_spawn(int cgroup_fd, const char *path, char *const argv[], char *const envp[],
              int set_ids, unsigned uid, unsigned gid, int ngroups, const unsigned *groups,
              int nmounts, char *const mount_from[], char *const mount_on[],
              int njoin, char *const join_procs[],
              int seccomp_listener, int inherit_fd, int netns_fd, int *listener_fd,
              int *failed_stage, int *failed_errno, int *failed_index)
{
    int sv[2];
    *failed_stage = 0;
    *failed_errno = 0;
    *failed_index = -1;
    *listener_fd = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;

    // Block every signal across the clone: the child must not run the runtime's handlers.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    struct child_args child = {
        .path = path, .argv = argv, .envp = envp, .set_ids = set_ids, .uid = uid, .gid = gid,
        .ngroups = ngroups, .groups = groups, .nmounts = nmounts, .mount_from = mount_from,
        .mount_on = mount_on, .njoin = njoin, .join_procs = join_procs, .seccomp_listener = seccomp_listener, .inherit_fd = inherit_fd, .netns_fd = netns_fd, .report_fd = sv[1],
    };
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0;
    args.exit_signal = SIGCHLD;
    args.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0;
    long pid;
    int saved = 0;
#if defined(__x86_64__)
    const size_t stack_size = 256 * 1024;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack != MAP_FAILED) {
        args.flags |= CLONE_VM | CLONE_VFORK;
        args.stack = (uint64_t)(uintptr_t)stack;
        args.stack_size = stack_size;
        pid = clone3_vm(&args, child_main, &child);
        if (pid < 0) {
            saved = (int)-pid;
            pid = -1;
        }
        // The child has exec'd or exited (CLONE_VFORK): its stack is free again.
        munmap(stack, stack_size);
    } else
#endif
    {
        pid = syscall(SYS_clone3, &args, sizeof args);
        if (pid == 0) _exit(child_main(&child));
        if (pid < 0) saved = errno;
    }

    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return -saved;
    }
    // Messages until end of file (execve closed the child's end, or it exited).
    for (;;) {
        int report[3] = {0, 0, -1};
        struct iovec iov = { .iov_base = report, .iov_len = sizeof report };
        union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        ssize_t n = recvmsg(sv[0], &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (c != NULL && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int))) {
            int fd;
            memcpy(&fd, CMSG_DATA(c), sizeof fd);
            if (*listener_fd >= 0) close(*listener_fd);
            *listener_fd = fd;
        }
        if (n == (ssize_t)sizeof report && report[0] != 0) {
            *failed_stage = report[0];
            *failed_errno = report[1];
            *failed_index = report[2];
        }
    }
    close(sv[0]);
    if (*failed_stage != 0 && *listener_fd >= 0) {
        close(*listener_fd);
        *listener_fd = -1;
    }
    return (int)pid;
}
