/* Shared by the benchmark's C helpers: a monotonic clock in nanoseconds, and a comparator for qsort. */
#include <time.h>

__attribute__((unused)) static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

__attribute__((unused)) static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}
