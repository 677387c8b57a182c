/* sock: the cost of socket() alone, for the seccomp mechanism (every socket() of a program under
 * 'via run --method seccomp' is answered by its supervisor).
 *
 *   sock N [FAMILY]       FAMILY: 4 (default) or 6
 *
 * N times: socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), timed, then close (not timed). Checks
 * that the socket carries a mark when VIA_EXPECT_MARK is set (so a run that is not tagged cannot
 * pass for a fast one). Prints one line:
 *   n mean_ns median_ns p90_ns mark
 * and exits 1 if a socket() fails. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) { fprintf(stderr, "usage: sock N [4|6]\n"); return 2; }
    int n = atoi(argv[1]);
    int family = argc == 3 && argv[2][0] == '6' ? AF_INET6 : AF_INET;
    if (n <= 0) { fprintf(stderr, "sock: N must be positive\n"); return 2; }
    long long *ns = malloc(n * sizeof(long long)), total = 0;
    unsigned mark = 0;
    for (int i = 0; i < n; i++) {
        long long t0 = now_ns();
        int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ns[i] = now_ns() - t0;
        if (s < 0) { perror("sock: socket"); return 1; }
        if (i == 0) {
            socklen_t len = sizeof mark;
            getsockopt(s, SOL_SOCKET, SO_MARK, &mark, &len);
            if (getenv("VIA_EXPECT_MARK") && mark == 0) { fprintf(stderr, "sock: the socket has no mark\n"); return 1; }
        }
        close(s);
        total += ns[i];
    }
    qsort(ns, n, sizeof(long long), cmp_ll);
    printf("%d %lld %lld %lld 0x%x\n", n, total / n, ns[n / 2], ns[(int)(0.9 * n)], mark);
    return 0;
}
