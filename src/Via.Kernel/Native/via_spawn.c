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
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

// Returns the child's pid, or -errno if no child was made. If the child failed before the program
// ran, *failed_stage says where (1: credentials, 2: execve) and *failed_errno why; the child has
// then exited with 127 and the caller reaps it.
int via_spawn(int cgroup_fd, const char *path, char *const argv[], char *const envp[],
              int set_ids, unsigned uid, unsigned gid, int ngroups, const unsigned *groups,
              int *failed_stage, int *failed_errno)
{
    int pipefd[2];
    *failed_stage = 0;
    *failed_errno = 0;
    if (pipe2(pipefd, O_CLOEXEC) < 0) return -errno;

    // Block every signal across the clone: the child must not run the runtime's handlers.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0;
    args.exit_signal = SIGCHLD;
    args.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0;
    long pid = syscall(SYS_clone3, &args, sizeof args);

    if (pid == 0) {
        // Child: async-signal-safe calls only.
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL); // also undoes the runtime's SIG_IGN of SIGPIPE
        sigset_t none;
        sigemptyset(&none);
        int report[2] = {0, 0};
        // Raw syscalls, not glibc's setgroups/setresuid: those broadcast the change to every thread
        // the parent had (SIGSETXID) and wait for answers that never come in a forked child.
        if (set_ids && (syscall(SYS_setgroups, (size_t)ngroups, groups) < 0 ||
                        syscall(SYS_setresgid, gid, gid, gid) < 0 || syscall(SYS_setresuid, uid, uid, uid) < 0)) {
            report[0] = 1;
            report[1] = errno;
        } else {
            sigprocmask(SIG_SETMASK, &none, NULL);
            execve(path, argv, envp);
            report[0] = 2;
            report[1] = errno;
        }
        (void)!write(pipefd[1], report, sizeof report);
        _exit(127);
    }

    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        return -saved;
    }
    int report[2] = {0, 0};
    ssize_t n;
    do n = read(pipefd[0], report, sizeof report); while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n == (ssize_t)sizeof report) {
        *failed_stage = report[0];
        *failed_errno = report[1];
    }
    return (int)pid;
}
