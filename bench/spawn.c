/* spawn: time fork+exec+wait of several commands, interleaved, with a monotonic clock.
 *
 *   spawn [-g GAP_MS] N WARMUP RAWFILE :: LABEL [NAME=VALUE...] PROG ARGS... :: LABEL ...
 *
 * Runs each command N times (after WARMUP unrecorded rounds), round-robin with the starting
 * command rotated every round so that no command always follows the same one; with -g, sleeps
 * GAP_MS between runs (so that each run finds the kernel idle, as a rarely run command would). NAME=VALUE
 * words before PROG are added to that command's environment (as env(1) does, without its exec). Every
 * child gets VIA_TRACE_T0, the CLOCK_MONOTONIC nanoseconds just before its fork, so a traced via can
 * tell how long it took to reach its Main (VIA_TRACE, see src/Via.Kernel/PhaseTrace.cs). The children's
 * stdin/stdout/stderr are /dev/null. Writes every sample to RAWFILE ("label ns status") and one
 * summary line per command to stdout:
 *   label n median_ns p90_ns mean_ns min_ns paired_diff_median_ns nonzero_exits
 * paired_diff is this command minus the first command in the same round (0 for the first). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct { const char *label; char **env; char **argv; long long *ns; int *status; } cmd_t;

#include "clock.h"

/* nearest-rank percentile of a sorted array */
static long long pct(const long long *s, int n, double p) {
    int k = (int)(p * n + 0.999999) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return s[k];
}

static int run(char **env, char **argv, long long *ns) {
    long long t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(2); }
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        dup2(fd, 0); dup2(fd, 1); dup2(fd, 2);
        if (fd > 2) close(fd);
        char t[32];
        snprintf(t, sizeof t, "%lld", t0);
        setenv("VIA_TRACE_T0", t, 1);
        for (char **e = env; *e; e++) putenv(*e);
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) { perror("waitpid"); exit(2); }
    *ns = now_ns() - t0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
    int gap_ms = 0;
    if (argc > 2 && strcmp(argv[1], "-g") == 0) {
        gap_ms = atoi(argv[2]);
        argv[2] = argv[0];
        argv += 2; argc -= 2;
    }
    if (argc < 6 || strcmp(argv[4], "::") != 0) {
        fprintf(stderr, "usage: spawn [-g GAP_MS] N WARMUP RAWFILE :: LABEL PROG ARGS... [:: LABEL PROG ARGS...]\n");
        return 2;
    }
    int n = atoi(argv[1]), warm = atoi(argv[2]);
    FILE *raw = fopen(argv[3], "w");
    if (!raw) { perror(argv[3]); return 2; }
    cmd_t cmds[16];
    int nc = 0;
    for (int i = 4; i < argc; ) {
        /* argv[i] is "::"; then LABEL PROG [ARGS...] up to the next "::" or the end */
        int j = i + 1;
        while (j < argc && strcmp(argv[j], "::") != 0) j++;
        if (j - i < 3 || nc == 16) { fprintf(stderr, "spawn: each '::' needs LABEL PROG [ARGS...]\n"); return 2; }
        int first = i + 2, ne = 0;
        while (first < j - 1 && strchr(argv[first], '=') && argv[first][0] != '/') first++, ne++;
        int len = j - first;
        cmds[nc].label = argv[i + 1];
        cmds[nc].env = calloc(ne + 1, sizeof(char *));
        memcpy(cmds[nc].env, &argv[i + 2], ne * sizeof(char *));
        cmds[nc].argv = calloc(len + 1, sizeof(char *));
        memcpy(cmds[nc].argv, &argv[first], len * sizeof(char *));
        cmds[nc].ns = calloc(n, sizeof(long long));
        cmds[nc].status = calloc(n, sizeof(int));
        nc++;
        i = j;
    }
    struct timespec gap = { gap_ms / 1000, (gap_ms % 1000) * 1000000L };
    long long scratch;
    for (int r = 0; r < warm; r++)
        for (int c = 0; c < nc; c++) run(cmds[c].env, cmds[c].argv, &scratch);
    for (int r = 0; r < n; r++)
        for (int k = 0; k < nc; k++) {
            int c = (r + k) % nc;
            if (gap_ms) nanosleep(&gap, NULL);
            cmds[c].status[r] = run(cmds[c].env, cmds[c].argv, &cmds[c].ns[r]);
        }
    long long *tmp = malloc(n * sizeof(long long));
    for (int c = 0; c < nc; c++) {
        int bad = 0;
        long double sum = 0;
        for (int r = 0; r < n; r++) {
            fprintf(raw, "%s\t%lld\t%d\n", cmds[c].label, cmds[c].ns[r], cmds[c].status[r]);
            sum += cmds[c].ns[r];
            if (cmds[c].status[r] != 0) bad++;
        }
        memcpy(tmp, cmds[c].ns, n * sizeof(long long));
        qsort(tmp, n, sizeof(long long), cmp_ll);
        long long med = pct(tmp, n, 0.5), p90 = pct(tmp, n, 0.9), mn = tmp[0];
        for (int r = 0; r < n; r++) tmp[r] = cmds[c].ns[r] - cmds[0].ns[r];
        qsort(tmp, n, sizeof(long long), cmp_ll);
        printf("%s %d %lld %lld %lld %lld %lld %d\n", cmds[c].label, n, med, p90,
               (long long)(sum / n), mn, pct(tmp, n, 0.5), bad);
    }
    fclose(raw);
    return 0;
}
