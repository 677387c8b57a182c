/* no_bpf PROGRAM [ARGS...]: runs PROGRAM with bpf() answering EPERM, as inside a container whose
 * profile forbids it (or an unprivileged LXC/Incus container, where bpf() has no capability to
 * load cgroup programs). Installs a seccomp filter (needs root, or NO_NEW_PRIVS) and execs. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: no_bpf PROGRAM [ARGS...]\n"); return 2; }
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_bpf, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog p = { .len = sizeof f / sizeof f[0], .filter = f };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p) < 0) { perror("no_bpf: seccomp"); return 125; }
    execv(argv[1], argv + 1);
    perror("no_bpf: execv");
    return 127;
}
