// via-seccomp: the supervisor of the seccomp mechanism. It answers the socket(AF_INET|AF_INET6)
// calls that the filter (src/Via.Kernel/Native/seccomp_filter.h) sends to user notification: it
// creates the socket itself, sets the route's mark on it, and installs it in the caller with
// SECCOMP_IOCTL_NOTIF_ADDFD and SECCOMP_ADDFD_FLAG_SEND (5.14), which also answers the call with
// the new fd number. The program never holds an untagged socket: anything that fails is answered
// with an errno.
//
//   via-seccomp LISTENER_FD MARK UID GID [GROUP...]
//
// via starts it as root, right after the program, inside the route's cgroup (clone3
// CLONE_INTO_CGROUP), with the listener inherited. Consequences, on purpose:
// - A socket belongs to the cgroup of the task that creates it (cgroup_sk_alloc), so its sockets
//   carry the route's cgroup: the egress guard and the route's counters apply to them as to the
//   program's own, and "the route's cgroup is populated" still means "the program runs" (this
//   process exits when the last filtered task is gone, see below).
// - It takes the program's identity before serving: gid, groups, and uid as its filesystem uid
//   (so the socket inode's owner, sk_uid, which `-m owner` and nft `skuid` match, is the program's
//   user: sock_alloc takes it from the fsuid), keeping CAP_NET_ADMIN only, for SO_MARK. The
//   kernel's checks at socket() then see the program's own rights: an unprivileged program asking
//   for SOCK_RAW gets EPERM, as it would without via, not a raw socket made by root. Its real and
//   effective uid stay 0, so the program cannot signal, stop or ptrace it. A root program keeps
//   root here (and can kill it, which only closes its own way to new sockets).
// - It exits when the listener reports POLLHUP: every task using the filter is gone (5.11).
//
// Fail closed: when this process dies, the listener's last copy closes (via closes its own at
// once), and the kernel answers every later (and every pending) notified socket() with ENOSYS.
//
// Per socket(): NOTIF_RECV (blocked in it: a watcher thread sees POLLHUP), socket,
// setsockopt(SO_MARK), NOTIF_ADDFD, close. No allocation, no /proc. SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (6.6) makes the kernel wake this process
// and then the caller on the current CPU, a hand-off instead of two cross-CPU wake-ups.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

static int listener;
static int mark;

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno != 0 || end == s || *end != 0 || v > max) return -1;
    *out = v;
    return 0;
}

static void fail(const char *what)
{
    fprintf(stderr, "via-seccomp: %s: %s\n", what, strerror(errno));
    exit(125);
}

// Takes the program's gid and groups, and its uid as the filesystem uid only (which is what a new
// socket's owner is taken from), keeping CAP_NET_ADMIN (permitted and effective) only. The real,
// effective and saved uids stay 0, so that the program, running as that uid, cannot signal this
// process (kill -STOP would leave its route's cgroup populated for good); without capabilities,
// uid 0 gives nothing the program's user does not have, file access going by the fsuid.
static void become(unsigned uid, unsigned gid, int ngroups, const gid_t *groups)
{
    if (setgroups((size_t)ngroups, groups) < 0) fail("setgroups");
    if (setresgid(gid, gid, gid) < 0) fail("setresgid");
    if (uid == 0) return; // a root program: root makes its sockets, as it would make them itself
    (void)setfsuid(uid);
    if ((unsigned)setfsuid((uid_t)-1) != uid) { errno = EPERM; fail("setfsuid"); }
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    data[CAP_NET_ADMIN / 32].effective = data[CAP_NET_ADMIN / 32].permitted = 1u << (CAP_NET_ADMIN % 32);
    if (syscall(SYS_capset, &header, data) < 0) fail("capset");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("PR_SET_NO_NEW_PRIVS");
}

static void answer_error(uint64_t id, int error)
{
    struct seccomp_notif_resp resp = { .id = id, .val = 0, .error = -error, .flags = 0 };
    // ENOENT: the caller is gone or was interrupted; nothing to answer.
    (void)ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

// A new marked socket (close-on-exec here; the caller's flag is set by ADDFD), or -errno.
static int make(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) {
        int e = errno;
        close(fd);
        return e == EPERM ? -EACCES : -e;
    }
    return fd;
}

// Made while the caller waits. (Sockets made in advance, handed over at once and replaced after,
// measured no faster: with SYNC_WAKE_UP the caller wakes on this CPU and waits for the replacement.)
static void serve(const struct seccomp_notif *req)
{
    int domain = (int)req->data.args[0], type = (int)req->data.args[1], protocol = (int)req->data.args[2];
    if (domain != AF_INET && domain != AF_INET6) { // the filter sends nothing else
        answer_error(req->id, EACCES);
        return;
    }
    // SOCK_NONBLOCK stays: it is a flag of the open file, which both fds share.
    int fd = make(domain, type & ~SOCK_CLOEXEC, protocol);
    if (fd < 0) {
        answer_error(req->id, -fd);
        return;
    }
    struct seccomp_notif_addfd add = {
        .id = req->id,
        .flags = SECCOMP_ADDFD_FLAG_SEND,
        .srcfd = (uint32_t)fd,
        .newfd = 0,
        .newfd_flags = (type & SOCK_CLOEXEC) ? O_CLOEXEC : 0,
    };
    int r = ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add);
    int e = errno;
    close(fd);
    // On success the caller's socket() has returned the new fd. ENOENT: the caller is gone (or, on
    // kernels before 5.19, was interrupted by a signal and will ask again). Anything else (EMFILE:
    // the caller's fd table is full) is the caller's answer.
    if (r < 0 && e != ENOENT) answer_error(req->id, e);
}

// Exits when no task uses the filter any more (POLLHUP). A thread of its own, so that the main
// loop blocks in NOTIF_RECV directly (one call less per socket): a blocked RECV is not woken when
// the filter is orphaned. Asking for no events, it is woken by POLLHUP only, never by requests.
static void *watch_hangup(void *unused)
{
    (void)unused;
    struct pollfd p = { .fd = listener, .events = 0 };
    for (;;) {
        p.revents = 0;
        if (poll(&p, 1, -1) < 0 && errno != EINTR) fail("poll");
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) exit(0);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long fd, m, uid, gid;
    if (argc < 5 || parse_uint(argv[1], 65535, &fd) < 0 || parse_uint(argv[2], UINT32_MAX, &m) < 0 ||
        parse_uint(argv[3], UINT32_MAX - 1, &uid) < 0 || parse_uint(argv[4], UINT32_MAX - 1, &gid) < 0 || argc - 5 > 65536) {
        fprintf(stderr, "usage: via-seccomp LISTENER_FD MARK UID GID [GROUP...] (started by 'via run --method seccomp')\n");
        return 2;
    }
    listener = (int)fd;
    mark = (int)(uint32_t)m;
    int ngroups = argc - 5;
    gid_t *groups = calloc((size_t)ngroups + 1, sizeof(gid_t));
    if (groups == NULL) fail("calloc");
    for (int i = 0; i < ngroups; i++) {
        unsigned long g;
        if (parse_uint(argv[5 + i], UINT32_MAX - 1, &g) < 0) {
            fprintf(stderr, "via-seccomp: bad group %s\n", argv[5 + i]);
            return 2;
        }
        groups[i] = (gid_t)g;
    }
    if (fcntl(listener, F_SETFD, FD_CLOEXEC) < 0) fail("the listener fd");

    // The kernel's struct sizes: RECV writes its own struct seccomp_notif, which may be larger than
    // these headers' (a newer kernel); the buffer is the larger of the two, zeroed before each RECV
    // (the kernel refuses a buffer that is not).
    struct seccomp_notif_sizes sizes;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) fail("SECCOMP_GET_NOTIF_SIZES");
    size_t notif_size = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif : sizeof(struct seccomp_notif);
    struct seccomp_notif *req = calloc(1, notif_size);
    if (req == NULL) fail("calloc");

    // 6.6 and later; without it the wake-ups are ordinary ones.
    (void)ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, (uint64_t)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);

    become((unsigned)uid, (unsigned)gid, ngroups, groups);
    free(groups);

    // Set up: from here on, nothing of via's stdio is held (the program's daemons may outlive via,
    // and this process with them; a caller reading via's output to its end must not wait for it).
    // Later failures reach the program as errno, or as ENOSYS once this process is gone.
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0) fail("/dev/null");
    for (int i = 0; i <= 2; i++)
        if (i != listener && dup2(null, i) < 0) fail("dup2");
    if (null > 2 && null != listener) close(null);

    // After become(): the thread shares this one's credentials (capset is per thread).
    pthread_t watcher;
    int e = pthread_create(&watcher, NULL, watch_hangup, NULL);
    if (e != 0) {
        errno = e;
        fail("pthread_create");
    }
    for (;;) {
        memset(req, 0, notif_size);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
            if (errno == EINTR || errno == ENOENT) continue; // the caller went away meanwhile
            fail("SECCOMP_IOCTL_NOTIF_RECV");
        }
        serve(req);
    }
}
