/* bulk: one bulk TCP transfer, timed, for the throughput part of bench/run.
 *
 *   bulk serve PORT                       server (IPv4 and IPv6), one connection at a time
 *   bulk send ADDRESS PORT BYTES [SOURCE] upload BYTES to the server, which answers with the count
 *   bulk recv ADDRESS PORT BYTES [SOURCE] download BYTES from the server
 *
 * The client prints one line: "bytes ns cpu_ns", where ns is the wall time from connect to the
 * last byte (the server's count for an upload) and cpu_ns the client's own CPU time (user +
 * system; on veth the system part includes most of the network stack of both directions). With
 * SOURCE the socket is bound to that address first (the plain path through up2). Exits 1 on any
 * short or failed transfer. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"

#define CHUNK (1 << 20)
static char buf[CHUNK];

static int full_write(int s, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(s, c, n, MSG_NOSIGNAL);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        c += w; n -= (size_t)w;
    }
    return 0;
}

static int full_read(int s, void *p, size_t n) {
    char *c = p;
    while (n > 0) {
        ssize_t r = recv(s, c, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        c += r; n -= (size_t)r;
    }
    return 0;
}

static int serve(int port) {
    int l = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
    setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &(int){0}, sizeof(int));
    struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any };
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 16) < 0) { perror("bulk serve"); return 1; }
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (s < 0) { if (errno == EINTR) continue; perror("accept"); return 1; }
        char op;
        uint64_t n = 0;
        if (full_read(s, &op, 1) == 0) {
            if (op == 'S') { /* upload: count to EOF, answer with the count */
                ssize_t r;
                while ((r = recv(s, buf, sizeof buf, 0)) > 0) n += (uint64_t)r;
                full_write(s, &n, sizeof n);
            } else if (op == 'R' && full_read(s, &n, sizeof n) == 0) { /* download: n bytes, then EOF */
                while (n > 0) {
                    size_t k = n < sizeof buf ? (size_t)n : sizeof buf;
                    if (full_write(s, buf, k) < 0) break;
                    n -= k;
                }
            }
        }
        close(s);
    }
}

static long long cpu_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((long long)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL + ((long long)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve(atoi(argv[2]));
    if ((argc != 5 && argc != 6) || (strcmp(argv[1], "send") != 0 && strcmp(argv[1], "recv") != 0)) {
        fprintf(stderr, "usage: bulk serve PORT | bulk send|recv ADDRESS PORT BYTES [SOURCE]\n");
        return 2;
    }
    int upload = strcmp(argv[1], "send") == 0;
    uint64_t bytes = strtoull(argv[4], NULL, 10);
    struct sockaddr_storage ss = {0}, src = {0};
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, argv[2], &a4->sin_addr) == 1) { a4->sin_family = AF_INET; a4->sin_port = htons(atoi(argv[3])); sl = sizeof *a4; }
    else if (inet_pton(AF_INET6, argv[2], &a6->sin6_addr) == 1) { a6->sin6_family = AF_INET6; a6->sin6_port = htons(atoi(argv[3])); sl = sizeof *a6; }
    else { fprintf(stderr, "bulk: bad address %s\n", argv[2]); return 2; }
    if (argc == 6) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&src;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&src;
        if (ss.ss_family == AF_INET && inet_pton(AF_INET, argv[5], &s4->sin_addr) == 1) s4->sin_family = AF_INET;
        else if (ss.ss_family == AF_INET6 && inet_pton(AF_INET6, argv[5], &s6->sin6_addr) == 1) s6->sin6_family = AF_INET6;
        else { fprintf(stderr, "bulk: bad source %s\n", argv[5]); return 2; }
    }
    long long c0 = cpu_ns(), t0 = now_ns();
    int s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) { perror("socket"); return 1; }
    if (src.ss_family && bind(s, (struct sockaddr *)&src, sl) < 0) { perror("bulk: bind"); return 1; }
    if (connect(s, (struct sockaddr *)&ss, sl) < 0) { perror("bulk: connect"); return 1; }
    uint64_t done = 0;
    if (upload) {
        if (full_write(s, "S", 1) < 0) { perror("bulk: send"); return 1; }
        for (uint64_t left = bytes; left > 0;) {
            size_t k = left < sizeof buf ? (size_t)left : sizeof buf;
            if (full_write(s, buf, k) < 0) { perror("bulk: send"); return 1; }
            left -= k;
        }
        shutdown(s, SHUT_WR);
        if (full_read(s, &done, sizeof done) < 0) { fprintf(stderr, "bulk: no count from the server\n"); return 1; }
    } else {
        char req[9] = "R";
        memcpy(req + 1, &bytes, sizeof bytes);
        if (full_write(s, req, sizeof req) < 0) { perror("bulk: send"); return 1; }
        ssize_t r;
        while ((r = recv(s, buf, sizeof buf, 0)) > 0) done += (uint64_t)r;
        if (r < 0) { perror("bulk: recv"); return 1; }
    }
    long long t = now_ns() - t0, c = cpu_ns() - c0;
    close(s);
    if (done != bytes) { fprintf(stderr, "bulk: %s %llu of %llu bytes\n", upload ? "server counted" : "received", (unsigned long long)done, (unsigned long long)bytes); return 1; }
    printf("%llu %lld %lld\n", (unsigned long long)bytes, t, c);
    return 0;
}
