// via-tagger: the privileged half of via's preload mechanism (src/Via.Mechanisms/Preload).
//
//   via-tagger --name NAME --cgroup PATH --cgroup-dir DIR --mark MARK
//
// Listens on the abstract Unix address NAME (SOCK_SEQPACKET) of its network namespace. Each
// request is one byte with a socket descriptor (SCM_RIGHTS) and the sender's credentials
// (SCM_CREDENTIALS, checked by the kernel); the answer is an int: 0 when the socket now carries
// MARK (SO_MARK, which needs CAP_NET_ADMIN: the program itself may be unprivileged), else an errno.
//
// Only processes in the route's cgroup get their sockets marked: the sender's pid must be in PATH
// (as /proc/PID/cgroup shows the cgroup2 hierarchy) or below it, when it connects and for every
// request (the kernel attaches the sending process's credentials, so a connection handed to a
// process outside the route is of no use to it). Anyone else is hung up on, or gets EACCES.
// Only AF_INET and AF_INET6 sockets are marked (EAFNOSUPPORT otherwise).
//
// Started by via (run as root, before the program): it forks; the child, in a session of its own,
// binds and listens, and says so to the parent, which prints the child's pid on stdout and exits;
// the child, with stdio on /dev/null, serves until SIGTERM, or until DIR (the route's cgroup) is gone: a tagger outlives
// neither its route nor a crashed via whose route 'via gc' removed. Errors before serving are one
// line on stdout, exit status 1.
//
// One thread, epoll, no allocation per request: the only per-request cost is the system calls
// (recvmsg, getsockopt, setsockopt, close, sendmsg) and a read of /proc/PID/cgroup the first time
// a connection sends on behalf of a pid.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 65536 // descriptors; the per-connection state is indexed by descriptor
#define CHECK_SECONDS 2       // how often the route's cgroup is looked for

static const char *name, *cgroup, *cgroup_dir;
static size_t cgroup_length;
static unsigned int mark;
static pid_t verified[MAX_CONNECTIONS]; // per connection: the last pid found in the route's cgroup
static volatile sig_atomic_t stopping;

static void on_term(int signal) { (void)signal; stopping = 1; }

static int fail(const char *what, int error)
{
    printf("via-tagger: %s: %s\n", what, strerror(error));
    fflush(stdout);
    return 1;
}

// True if pid is in the route's cgroup or below it (the cgroup2 line "0::PATH" of /proc/PID/cgroup).
static int in_route(pid_t pid)
{
    static char buffer[8192];
    char file[64];
    snprintf(file, sizeof(file), "/proc/%d/cgroup", (int)pid);
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buffer, sizeof(buffer) - 1);
    close(fd);
    if (n <= 0) return 0;
    buffer[n] = 0;
    for (char *line = buffer; line && *line; ) {
        char *end = strchr(line, '\n');
        if (end) *end = 0;
        if (strncmp(line, "0::", 3) == 0) {
            const char *path = line + 3;
            return strncmp(path, cgroup, cgroup_length) == 0 && (path[cgroup_length] == 0 || path[cgroup_length] == '/');
        }
        line = end ? end + 1 : NULL;
    }
    return 0;
}

static void drop(int epoll, int conn)
{
    epoll_ctl(epoll, EPOLL_CTL_DEL, conn, NULL);
    close(conn);
    if (conn < MAX_CONNECTIONS) verified[conn] = 0;
}

// Serves one request on conn; false when the connection is done.
static int serve(int conn)
{
    char byte;
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    union {
        char buffer[CMSG_SPACE(sizeof(int) * 4) + CMSG_SPACE(sizeof(struct ucred))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer, .msg_controllen = sizeof(control.buffer) };
    ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) return 0;
    int fds[4], nfds = 0;
    struct ucred *creds = NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_RIGHTS) {
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count && nfds < 4; i++) memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        } else if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
            creds = (struct ucred *)CMSG_DATA(c);
        }
    }
    int answer = 0;
    if (nfds != 1 || (msg.msg_flags & MSG_CTRUNC)) answer = EINVAL;
    else if (!creds || creds->pid <= 0) answer = EACCES;
    else if (conn < MAX_CONNECTIONS && verified[conn] == creds->pid) answer = 0;
    else if (in_route(creds->pid)) { if (conn < MAX_CONNECTIONS) verified[conn] = creds->pid; }
    else answer = EACCES;
    if (answer == 0) {
        int domain;
        socklen_t length = sizeof(domain);
        if (getsockopt(fds[0], SOL_SOCKET, SO_DOMAIN, &domain, &length) < 0) answer = errno;
        else if (domain != AF_INET && domain != AF_INET6) answer = EAFNOSUPPORT;
        else if (setsockopt(fds[0], SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) answer = errno;
    }
    for (int i = 0; i < nfds; i++) close(fds[i]);
    if (send(conn, &answer, sizeof(answer), MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(answer)) return 0;
    return 1;
}

// Keeps only CAP_NET_ADMIN (SO_MARK), for good: the tagger takes descriptors from unprivileged
// programs, so it holds no power it does not use. It stays uid 0, which is what the library checks
// its peer for; reading /proc/PID/cgroup (mode 0444) and the route's cgroup directory needs nothing.
static int keep_only_net_admin(void)
{
    for (int cap = 0; cap < 64; cap++)
        if (cap != CAP_NET_ADMIN && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno == EINVAL) break; // past the last capability
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    data[CAP_NET_ADMIN / 32].effective = data[CAP_NET_ADMIN / 32].permitted = 1u << (CAP_NET_ADMIN % 32);
    if (syscall(SYS_capset, &header, data) < 0) return -1;
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

static int route_exists(void)
{
    struct stat st;
    return stat(cgroup_dir, &st) == 0;
}

int main(int argc, char **argv)
{
    const char *mark_text = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--name") == 0) name = argv[i + 1];
        else if (strcmp(argv[i], "--cgroup") == 0) cgroup = argv[i + 1];
        else if (strcmp(argv[i], "--cgroup-dir") == 0) cgroup_dir = argv[i + 1];
        else if (strcmp(argv[i], "--mark") == 0) mark_text = argv[i + 1];
    }
    struct sockaddr_un address;
    if (!name || !cgroup || !cgroup_dir || !mark_text || cgroup[0] != '/' || strlen(name) + 1 > sizeof(address.sun_path)) {
        printf("via-tagger: usage: via-tagger --name NAME --cgroup PATH --cgroup-dir DIR --mark MARK\n");
        return 2;
    }
    cgroup_length = strlen(cgroup);
    while (cgroup_length > 1 && cgroup[cgroup_length - 1] == '/') cgroup_length--;
    if (cgroup_length == 1) cgroup_length = 0; // the root: every process
    char *end;
    errno = 0;
    unsigned long value = strtoul(mark_text, &end, 0);
    if (errno || *end || value > 0xffffffffUL) return fail("--mark", EINVAL);
    mark = (unsigned int)value;

    // Nothing of via's (a lock, a journal, a pipe) may stay open here: this process outlives via.
    syscall(SYS_close_range, 3, ~0U, 0);

    struct rlimit files = { MAX_CONNECTIONS, MAX_CONNECTIONS };
    setrlimit(RLIMIT_NOFILE, &files); // best effort: descriptors above the limit are refused below

    // Fork first, so that the process that listens is the one that stays: its pid is what a
    // connection's SO_PEERCRED names (how via finds it to stop it). The parent waits for the
    // child's word on a pipe, prints the child's pid (or its error) and exits.
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) return fail("pipe", errno);
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) return fail("fork", errno);
    if (child > 0) {
        close(ready[1]);
        char word[256];
        ssize_t n, got = 0;
        while (got < (ssize_t)sizeof(word) - 1 && (n = read(ready[0], word + got, sizeof(word) - 1 - got)) != 0) {
            if (n < 0) { if (errno == EINTR) continue; break; }
            got += n;
        }
        word[got] = 0;
        if (strcmp(word, "ok") == 0) { printf("%d\n", (int)child); return 0; }
        printf("%s\n", got > 0 ? word : "via-tagger: the serving process died before it was ready");
        return 1;
    }
    close(ready[0]);
    setsid();
    int listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    memcpy(address.sun_path + 1, name, strlen(name));
    const char *failed = listener < 0 ? "socket"
        : bind(listener, (struct sockaddr *)&address, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name))) < 0 ? "bind"
        : listen(listener, 512) < 0 ? "listen" : NULL;
    if (!failed && keep_only_net_admin() < 0) failed = "dropping capabilities";
    if (failed) {
        dprintf(ready[1], "via-tagger: %s @%s: %s", failed, name, strerror(errno));
        _exit(1);
    }
    if (write(ready[1], "ok", 2) != 2) _exit(1);
    close(ready[1]);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); if (null > 2) close(null); }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    struct sigaction term = { .sa_handler = on_term };
    sigaction(SIGTERM, &term, NULL);

    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll < 0) return 1;
    struct epoll_event event = { .events = EPOLLIN, .data.fd = listener };
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event) < 0) return 1;

    int seen_route = route_exists();
    struct timespec last, now;
    clock_gettime(CLOCK_MONOTONIC, &last);
    struct epoll_event events[64];
    while (!stopping) {
        int n = epoll_wait(epoll, events, 64, CHECK_SECONDS * 1000);
        if (n < 0 && errno != EINTR) return 1;
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int conn;
                while ((conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
                    // Only processes of the route may hold a connection (anyone in the network
                    // namespace can connect to an abstract address): a stranger is hung up on at once.
                    struct ucred peer;
                    socklen_t length = sizeof(peer);
                    struct epoll_event e = { .events = EPOLLIN, .data.fd = conn };
                    if (conn >= MAX_CONNECTIONS || getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &peer, &length) < 0 || !in_route(peer.pid)
                        || epoll_ctl(epoll, EPOLL_CTL_ADD, conn, &e) < 0) {
                        close(conn);
                        continue;
                    }
                    // The credentials the kernel attaches to each request reach recvmsg only with SO_PASSCRED here.
                    int on = 1;
                    setsockopt(conn, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
                    verified[conn] = peer.pid;
                }
            } else if ((events[i].events & EPOLLIN) ? !serve(fd) : 1) {
                drop(epoll, fd);
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - last.tv_sec >= CHECK_SECONDS) {
            last = now;
            if (route_exists()) seen_route = 1;
            else if (seen_route) break; // the route is gone: so is its tagger
        }
    }
    return 0;
}
