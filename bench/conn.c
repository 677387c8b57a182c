/* conn: one long-lived client doing N sequential TCP connections to a 'via __serve' server.
 *
 *   conn ADDRESS PORT N EXPECT [SOURCE]
 *
 * Each cycle: socket, connect, send "GET / HTTP/1.0", read to EOF, close; timed with a monotonic
 * clock; with SOURCE, each socket is bound to that local address first. Every answer's body must start with EXPECT (e.g. "isp2 10.2.0.2"), which proves the path
 * each connection took. Prints one line:
 *   n total_ns mean_ns median_ns p90_ns cpu_ns body
 * where cpu_ns is the client's own CPU time (user + system, which on veth includes much of the
 * network stack's work for both directions) for all N connections.
 * and exits 1 on the first failed or unexpected connection. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) { fprintf(stderr, "usage: conn ADDRESS PORT N EXPECT [SOURCE]\n"); return 2; }
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    int port = atoi(argv[2]), n = atoi(argv[3]);
    if (inet_pton(AF_INET, argv[1], &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET; a4->sin_port = htons(port); sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, argv[1], &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6; a6->sin6_port = htons(port); sl = sizeof *a6;
    } else { fprintf(stderr, "conn: bad address %s\n", argv[1]); return 2; }
    const char *expect = argv[4];
    struct sockaddr_storage src;
    memset(&src, 0, sizeof src);
    if (argc == 6) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&src;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&src;
        if (ss.ss_family == AF_INET && inet_pton(AF_INET, argv[5], &s4->sin_addr) == 1) s4->sin_family = AF_INET;
        else if (ss.ss_family == AF_INET6 && inet_pton(AF_INET6, argv[5], &s6->sin6_addr) == 1) s6->sin6_family = AF_INET6;
        else { fprintf(stderr, "conn: bad source %s\n", argv[5]); return 2; }
    }
    static const char req[] = "GET / HTTP/1.0\r\n\r\n";
    long long *ns = malloc(n * sizeof(long long));
    char buf[1024], body[128] = "";
    struct timeval tv = { .tv_sec = 3 };
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    long long start = now_ns();
    for (int i = 0; i < n; i++) {
        long long t0 = now_ns();
        int s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) { perror("socket"); return 1; }
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        /* like a plain connect, let connect() pick the port (no bind-time port search) */
        if (src.ss_family) setsockopt(s, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &(int){1}, sizeof(int));
        if (src.ss_family && bind(s, (struct sockaddr *)&src, sl) < 0) { fprintf(stderr, "conn: bind #%d: %s\n", i, strerror(errno)); return 1; }
        if (connect(s, (struct sockaddr *)&ss, sl) < 0) { fprintf(stderr, "conn: connect #%d: %s\n", i, strerror(errno)); return 1; }
        if (send(s, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1)) { fprintf(stderr, "conn: send #%d: %s\n", i, strerror(errno)); return 1; }
        size_t got = 0;
        ssize_t r;
        while ((r = recv(s, buf + got, sizeof buf - 1 - got, 0)) > 0) got += r;
        if (r < 0) { fprintf(stderr, "conn: recv #%d: %s\n", i, strerror(errno)); return 1; }
        close(s);
        ns[i] = now_ns() - t0;
        buf[got] = 0;
        char *b = strstr(buf, "\r\n\r\n");
        if (!b || strncmp(b + 4, expect, strlen(expect)) != 0) {
            fprintf(stderr, "conn: answer #%d is not '%s...': %s\n", i, expect, b ? b + 4 : buf);
            return 1;
        }
        if (i == 0) { snprintf(body, sizeof body, "%s", b + 4); body[strcspn(body, "\r\n")] = 0; }
    }
    long long total = now_ns() - start;
    getrusage(RUSAGE_SELF, &ru1);
#define TV_NS(tv) ((long long)(tv).tv_sec * 1000000000LL + (long long)(tv).tv_usec * 1000LL)
    long long cpu = TV_NS(ru1.ru_utime) + TV_NS(ru1.ru_stime) - TV_NS(ru0.ru_utime) - TV_NS(ru0.ru_stime);
    qsort(ns, n, sizeof(long long), cmp_ll);
    long long p90 = ns[(int)(0.9 * n + 0.999999) - 1 < n ? (int)(0.9 * n + 0.999999) - 1 : n - 1];
    printf("%d %lld %lld %lld %lld %lld %s\n", n, total, total / n, ns[n / 2], p90, cpu, body);
    return 0;
}
