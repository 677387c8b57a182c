/* seccomp_abi: the socket calls of the other x86 ABIs a 64-bit program can reach (int $0x80: i386; the
 * __X32_SYSCALL_BIT: x32), to check via's seccomp filter covers them. Prints one line per call. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
static long i386_call(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}
static long x64_call(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
static void show(const char *what, long r) {
    if (r < 0) { printf("%s error %ld\n", what, -r); return; }
    unsigned mark = 0; socklen_t len = sizeof mark;
    getsockopt((int)r, SOL_SOCKET, SO_MARK, &mark, &len);
    printf("%s fd %s\n", what, mark ? "marked" : "unmarked");
}
int main(void) {
    if (getenv("ABI_I386")) {
        printf("i386 getpid %s\n", i386_call(20, 0, 0, 0) == getpid() ? "ok" : "unavailable");
        show("i386 socket", i386_call(359, AF_INET, SOCK_STREAM, 0));
        unsigned long args[3] = { AF_INET, SOCK_STREAM, 0 };
        show("i386 socketcall", i386_call(102, 1, (long)(unsigned)(unsigned long)args, 0));
    }
    show("x32 socket", x64_call(0x40000000L | 41, AF_INET, SOCK_STREAM, 0));
    show("x64 socket, high bits in the domain", x64_call(41, 0x100000000L | AF_INET, SOCK_STREAM, 0));
    return 0;
}
