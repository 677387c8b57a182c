// via_preload: the LD_PRELOAD library of via's preload mechanism (src/Via.Mechanisms/Preload).
//
// Every AF_INET/AF_INET6 socket the program makes through libc's socket() is tagged before
// socket() returns: the descriptor is sent (SCM_RIGHTS) over a Unix connection to the route's
// tagger (via-tagger, run as root by via), which checks that the sender is in the route's cgroup,
// sets SO_MARK and answers with an errno. An unprivileged program cannot set SO_MARK itself
// (CAP_NET_ADMIN), which is why App-Route-Jail's setsockopt() in the program only works for root.
//
// Rules this file keeps:
// - Fail closed: a socket that cannot be tagged is closed and socket() fails (EACCES, or the
//   tagger's errno). Never a silent untagged socket.
// - Silent: nothing is ever written to the program's stdout or stderr.
// - The configuration (tagger address, LD_PRELOAD) is read once, in the constructor, so a program
//   that unsets or changes them later changes nothing here; the exec family puts both back into
//   the environment of the programs it starts.
// - No recursion: socket and execve are made with raw syscalls; every symbol this file defines is
//   interposed on the program and on this library alike.
// - Async-signal-safe where it runs between vfork and execve (the exec wrappers): stack only, no
//   malloc, no locks.
//
// What preload cannot reach, and the route's cgroup and egress guard catch (fail closed, no leak):
// sockets made by raw syscalls (Go's net package, io_uring), by libc internally without the PLT
// (glibc's DNS resolver, res_send), and by static or set-id children. Their sockets carry no mark;
// their packets take the main table, and the egress guard drops those that would leave by another
// interface than the route's.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define VISIBLE __attribute__((visibility("default")))

#define TAGGER_VAR "VIA_PRELOAD_TAGGER"
#define PRELOAD_VAR "LD_PRELOAD"
// The connection to the tagger is moved to a descriptor at or above this one, out of the way of
// programs that expect their next open() to return the lowest free number.
#define CONNECTION_FD_MIN 200
// How long socket() waits for the tagger's answer before failing (the tagger answers in microseconds).
#define ANSWER_TIMEOUT_SECONDS 10

extern char **environ;

// --- configuration, captured by the constructor ---------------------------------------------------

static char own_path[PATH_MAX];                     // this library's file, as the loader named it
static char tagger_name[sizeof(((struct sockaddr_un *)0)->sun_path) - 1]; // abstract name, without the leading NUL
static size_t tagger_length;                        // 0: not configured, every inet socket fails
static char tagger_entry[sizeof(TAGGER_VAR) + sizeof(tagger_name) + 1];   // "VIA_PRELOAD_TAGGER=NAME"
static char *preload_entry;                         // "LD_PRELOAD=VALUE" as the program started with (ours first)

typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*posix_spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *, char *const[], char *const[]);
typedef int (*system_fn)(const char *);
typedef FILE *(*popen_fn)(const char *, const char *);

static execvpe_fn real_execvpe;
static fexecve_fn real_fexecve;
static posix_spawn_fn real_posix_spawn, real_posix_spawnp;
static system_fn real_system;
static popen_fn real_popen;

// --- the connection to the tagger (one per process, shared by its threads) ------------------------

static pthread_mutex_t connection_lock = PTHREAD_MUTEX_INITIALIZER;
static int connection = -1;        // descriptor, or -1
static pid_t connection_pid;       // the process that opened it (a forked child opens its own)
static dev_t connection_dev;       // what the descriptor was, to tell when the program closed it
static ino_t connection_ino;       //   and reused its number
static pthread_t lock_owner;        // thread holding connection_lock (a signal handler re-entering)

static pid_t own_pid(void) { return (pid_t)syscall(SYS_getpid); }
static void close_fd(int fd) { syscall(SYS_close, fd); }

static void after_fork_in_child(void)
{
    // The parent's lock may have been held by another thread; the child has one thread and no request in flight.
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    connection_lock = fresh;
    lock_owner = 0;
    // The descriptor is the parent's connection: the answers on it are the parent's. Close our copy.
    if (connection >= 0) close_fd(connection);
    connection = -1;
}

__attribute__((constructor)) static void via_preload_init(void)
{
    Dl_info info;
    if (dladdr((void *)via_preload_init, &info) && info.dli_fname && strlen(info.dli_fname) < sizeof(own_path))
        strcpy(own_path, info.dli_fname);

    const char *name = getenv(TAGGER_VAR);
    if (name && *name && strlen(name) < sizeof(tagger_name)) {
        tagger_length = strlen(name);
        memcpy(tagger_name, name, tagger_length);
        snprintf(tagger_entry, sizeof(tagger_entry), "%s=%s", TAGGER_VAR, tagger_name);
    }

    // LD_PRELOAD for children: the value we started with, with this library in it.
    const char *preload = getenv(PRELOAD_VAR);
    size_t need = sizeof(PRELOAD_VAR) + strlen(own_path) + 2 + (preload ? strlen(preload) : 0);
    preload_entry = malloc(need);
    if (preload_entry) {
        int ours = 0;
        if (preload && own_path[0]) {
            // Tokens are separated by ':' or ' ' (ld.so(8)).
            size_t n = strlen(own_path);
            for (const char *p = preload; (p = strstr(p, own_path)) != NULL; p += n)
                if ((p == preload || p[-1] == ':' || p[-1] == ' ') && (p[n] == 0 || p[n] == ':' || p[n] == ' ')) { ours = 1; break; }
        }
        if (ours || !own_path[0]) snprintf(preload_entry, need, "%s=%s", PRELOAD_VAR, preload ? preload : "");
        else if (preload && *preload) snprintf(preload_entry, need, "%s=%s:%s", PRELOAD_VAR, own_path, preload);
        else snprintf(preload_entry, need, "%s=%s", PRELOAD_VAR, own_path);
    }

    real_execvpe = (execvpe_fn)dlsym(RTLD_NEXT, "execvpe");
    real_fexecve = (fexecve_fn)dlsym(RTLD_NEXT, "fexecve");
    real_posix_spawn = (posix_spawn_fn)dlsym(RTLD_NEXT, "posix_spawn");
    real_posix_spawnp = (posix_spawn_fn)dlsym(RTLD_NEXT, "posix_spawnp");
    real_system = (system_fn)dlsym(RTLD_NEXT, "system");
    real_popen = (popen_fn)dlsym(RTLD_NEXT, "popen");

    pthread_atfork(NULL, NULL, after_fork_in_child);
}

// --- tagging ------------------------------------------------------------------------------------------

// True if `connection` is still the socket we opened (the program may have closed it, and even
// reused its number for a file of its own: then it is not ours to use or close).
static int connection_is_ours(void)
{
    struct stat st;
    if (syscall(SYS_fstat, connection, &st) < 0) return 0;
    return st.st_dev == connection_dev && st.st_ino == connection_ino;
}

// Opens a connection to the tagger; returns the descriptor or -errno.
static int connect_tagger(void)
{
    int s = (int)syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    struct sockaddr_un address;
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    memcpy(address.sun_path + 1, tagger_name, tagger_length); // abstract: sun_path[0] is NUL
    socklen_t length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + tagger_length);
    long r;
    do r = syscall(SYS_connect, s, (struct sockaddr *)&address, length);
    while (r < 0 && errno == EINTR);
    if (r < 0) { int e = errno; close_fd(s); return -e; }
    // Only root may be the tagger: anyone can bind an abstract name, and whoever holds it would
    // receive the program's sockets.
    struct ucred peer;
    socklen_t peer_length = sizeof(peer);
    if (syscall(SYS_getsockopt, s, SOL_SOCKET, SO_PEERCRED, &peer, &peer_length) < 0 || peer.uid != 0) {
        close_fd(s);
        return -EACCES;
    }
    // With SO_PASSCRED on our end, the kernel attaches the sending process's credentials to every
    // request, whoever holds the connection (one cannot be passed on to a process outside the route).
    int on = 1;
    syscall(SYS_setsockopt, s, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
    struct timeval timeout = { .tv_sec = ANSWER_TIMEOUT_SECONDS };
    syscall(SYS_setsockopt, s, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    int high = (int)syscall(SYS_fcntl, s, F_DUPFD_CLOEXEC, CONNECTION_FD_MIN);
    if (high >= 0) { close_fd(s); s = high; }
    return s;
}

// Sends `fd` to the tagger on `conn` and reads its answer: 0, or an errno (positive). A negative
// result means the connection itself failed (-errno) and should not be used again.
static int ask_tagger(int conn, int fd)
{
    char request = 'T';
    struct iovec iov = { .iov_base = &request, .iov_len = 1 };
    union {
        char buffer[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer, .msg_controllen = sizeof(control.buffer) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    long r;
    do r = syscall(SYS_sendmsg, conn, &msg, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    int answer;
    do r = syscall(SYS_recvfrom, conn, &answer, sizeof(answer), 0, NULL, NULL);
    while (r < 0 && errno == EINTR);
    if (r < 0) return errno == EAGAIN ? -ETIMEDOUT : -errno;
    if (r != sizeof(answer)) return -EPROTO; // 0: the tagger went away
    return answer < 0 ? EACCES : answer;
}

// One request on a connection of its own (a signal handler that makes a socket while its thread holds the lock).
static int tag_alone(int fd)
{
    int conn = connect_tagger();
    if (conn < 0) return EACCES;
    int answer = ask_tagger(conn, fd);
    close_fd(conn);
    return answer == 0 ? 0 : answer > 0 ? answer : EACCES;
}

// With connection_lock held.
static int tag_locked(int fd)
{
    pid_t pid = own_pid();
    if (connection >= 0 && (connection_pid != pid || !connection_is_ours())) {
        // A child made without fork() (raw clone) still holds its parent's connection: close our copy.
        if (connection_pid != pid && connection_is_ours()) close_fd(connection);
        connection = -1;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (connection < 0) {
            int conn = connect_tagger();
            if (conn < 0) return EACCES;
            struct stat st;
            if (syscall(SYS_fstat, conn, &st) < 0) { close_fd(conn); return EACCES; }
            connection = conn;
            connection_pid = pid;
            connection_dev = st.st_dev;
            connection_ino = st.st_ino;
        }
        int answer = ask_tagger(connection, fd);
        if (answer >= 0) return answer;
        // The connection broke (a stale one, say): once more on a new one.
        close_fd(connection);
        connection = -1;
    }
    return EACCES;
}

// Gets `fd` tagged; 0 or the errno to fail socket() with.
static int tag(int fd)
{
    if (tagger_length == 0) return EACCES; // loaded without via's configuration: fail closed
    pthread_t self = pthread_self();
    if (pthread_mutex_trylock(&connection_lock) != 0) {
        if (pthread_equal(__atomic_load_n(&lock_owner, __ATOMIC_RELAXED), self)) return tag_alone(fd);
        pthread_mutex_lock(&connection_lock);
    }
    __atomic_store_n(&lock_owner, self, __ATOMIC_RELAXED);
    int answer = tag_locked(fd);
    __atomic_store_n(&lock_owner, (pthread_t)0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&connection_lock);
    return answer;
}

VISIBLE int socket(int domain, int type, int protocol)
{
    long fd = syscall(SYS_socket, domain, type, protocol);
    if (fd < 0) return -1;
    if (domain != AF_INET && domain != AF_INET6) return (int)fd;
    int error = tag((int)fd);
    if (error != 0) {
        close_fd((int)fd);
        errno = error;
        return -1;
    }
    return (int)fd;
}

// socketpair() needs no wrapper: the kernel makes pairs of AF_UNIX (and AF_TIPC) sockets only;
// AF_INET and AF_INET6 answer EOPNOTSUPP. glibc's __socket is GLIBC_PRIVATE, called only from
// inside libc, where calls do not go through the PLT and cannot be interposed.

// --- the environment of programs started by this one ----------------------------------------------

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

// "NAME=FIRST:SECOND" into buffer (sized by the caller); no stdio, as it may run after vfork.
static char *join_entry(char *buffer, const char *name, const char *first, const char *second)
{
    char *p = buffer;
    size_t n;
    n = strlen(name); memcpy(p, name, n); p += n; *p++ = '=';
    n = strlen(first); memcpy(p, first, n); p += n; *p++ = ':';
    n = strlen(second); memcpy(p, second, n); p += n; *p = 0;
    return buffer;
}

static size_t environment_count(char *const envp[])
{
    size_t n = 0;
    if (envp) while (envp[n]) n++;
    return n;
}

// The program's own LD_PRELOAD entry in envp, if it still names this library; else NULL.
static const char *preload_with_us(char *const envp[])
{
    if (!envp || !own_path[0]) return NULL;
    size_t n = strlen(own_path);
    for (size_t i = 0; envp[i]; i++) {
        if (!starts_with(envp[i], PRELOAD_VAR "=")) continue;
        const char *value = envp[i] + sizeof(PRELOAD_VAR);
        for (const char *p = value; (p = strstr(p, own_path)) != NULL; p += n)
            if ((p == value || p[-1] == ':' || p[-1] == ' ') && (p[n] == 0 || p[n] == ':' || p[n] == ' ')) return envp[i];
    }
    return NULL;
}

// The program's LD_PRELOAD value (without us), to keep after us; NULL if none.
static const char *preload_value(char *const envp[])
{
    if (!envp) return NULL;
    for (size_t i = 0; envp[i]; i++)
        if (starts_with(envp[i], PRELOAD_VAR "=")) return envp[i] + sizeof(PRELOAD_VAR);
    return NULL;
}

static size_t preload_buffer_size(char *const envp[])
{
    const char *theirs = preload_value(envp);
    return sizeof(PRELOAD_VAR) + strlen(own_path) + 2 + (theirs ? strlen(theirs) : 0);
}

// Fills `out` (environment_count(envp) + 3 slots) with envp, our tagger entry and an LD_PRELOAD
// that names this library first: the program's own LD_PRELOAD is kept after it. `buffer` holds a
// new LD_PRELOAD entry when one is needed. Stack only: safe between vfork and execve.
static char **fixed_environment(char *const envp[], char **out, char *buffer, size_t buffer_size)
{
    size_t k = 0;
    const char *ours = preload_with_us(envp);
    const char *theirs = preload_value(envp);
    if (envp)
        for (size_t i = 0; envp[i]; i++)
            if (!starts_with(envp[i], TAGGER_VAR "=") && !starts_with(envp[i], PRELOAD_VAR "=")) out[k++] = envp[i];
    if (tagger_length) out[k++] = tagger_entry;
    if (ours) out[k++] = (char *)ours;
    else if (theirs && *theirs && own_path[0] && buffer_size >= sizeof(PRELOAD_VAR) + strlen(own_path) + 2 + strlen(theirs)) out[k++] = join_entry(buffer, PRELOAD_VAR, own_path, theirs);
    else if (preload_entry) out[k++] = preload_entry;
    out[k] = NULL;
    return out;
}

#define FIXED_ENVIRONMENT(envp, name)                                              \
    char *name##_slots[environment_count(envp) + 3];                              \
    size_t name##_size = preload_buffer_size(envp);                               \
    char name##_buffer[name##_size];                                              \
    char **name = fixed_environment(envp, name##_slots, name##_buffer, name##_size)

// For system() and popen(), which start their shell with libc's own environ through internal calls:
// put our variables back into environ if the program removed or changed them.
static void restore_environ(void)
{
    const char *tagger = getenv(TAGGER_VAR);
    if (tagger_length && (!tagger || strcmp(tagger, tagger_name) != 0)) setenv(TAGGER_VAR, tagger_name, 1);
    if (!preload_with_us(environ)) {
        const char *theirs = getenv(PRELOAD_VAR);
        if (theirs && *theirs && own_path[0]) {
            size_t size = strlen(own_path) + strlen(theirs) + 2;
            char value[size];
            snprintf(value, size, "%s:%s", own_path, theirs);
            setenv(PRELOAD_VAR, value, 1);
        } else if (preload_entry) {
            setenv(PRELOAD_VAR, preload_entry + sizeof(PRELOAD_VAR), 1);
        }
    }
}

VISIBLE int execve(const char *path, char *const argv[], char *const envp[])
{
    FIXED_ENVIRONMENT(envp, env);
    return (int)syscall(SYS_execve, path, argv, env);
}

VISIBLE int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    FIXED_ENVIRONMENT(envp, env);
    return (int)syscall(SYS_execveat, dirfd, path, argv, env, flags);
}

VISIBLE int fexecve(int fd, char *const argv[], char *const envp[])
{
    FIXED_ENVIRONMENT(envp, env);
    if (!real_fexecve) { errno = ENOSYS; return -1; }
    return real_fexecve(fd, argv, env);
}

VISIBLE int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }

VISIBLE int execvpe(const char *file, char *const argv[], char *const envp[])
{
    FIXED_ENVIRONMENT(envp, env);
    if (!real_execvpe) { errno = ENOSYS; return -1; }
    return real_execvpe(file, argv, env);
}

VISIBLE int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

// The execl family: the arguments into an array on the stack.
#define COLLECT_ARGS(first, last, args)                                            \
    size_t args##_n = 1;                                                           \
    va_list args##_ap;                                                             \
    va_start(args##_ap, last);                                                     \
    while (va_arg(args##_ap, char *)) args##_n++;                                  \
    va_end(args##_ap);                                                             \
    char *args[args##_n + 1];                                                      \
    args[0] = (char *)(first);                                                     \
    va_start(args##_ap, last);                                                     \
    for (size_t i = 1; i <= args##_n; i++) args[i] = va_arg(args##_ap, char *);    \

VISIBLE int execl(const char *path, const char *arg, ...)
{
    COLLECT_ARGS(arg, arg, args)
    va_end(args_ap);
    return execve(path, args, environ);
}

VISIBLE int execlp(const char *file, const char *arg, ...)
{
    COLLECT_ARGS(arg, arg, args)
    va_end(args_ap);
    return execvpe(file, args, environ);
}

VISIBLE int execle(const char *path, const char *arg, ...)
{
    COLLECT_ARGS(arg, arg, args)
    char *const *envp = va_arg(args_ap, char *const *);
    va_end(args_ap);
    return execve(path, args, envp);
}

VISIBLE int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    FIXED_ENVIRONMENT(envp, env);
    if (!real_posix_spawn) return ENOSYS;
    return real_posix_spawn(pid, path, actions, attr, argv, env);
}

VISIBLE int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                         const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    FIXED_ENVIRONMENT(envp, env);
    if (!real_posix_spawnp) return ENOSYS;
    return real_posix_spawnp(pid, file, actions, attr, argv, env);
}

VISIBLE int system(const char *command)
{
    restore_environ();
    if (!real_system) { errno = ENOSYS; return -1; }
    return real_system(command);
}

VISIBLE FILE *popen(const char *command, const char *mode)
{
    restore_environ();
    if (!real_popen) { errno = ENOSYS; return NULL; }
    return real_popen(command, mode);
}
