/*
 * spawn.c: measuring wrapper used by bench/run.py.
 *
 *   spawn REPORT PROGRAM [ARGS...]
 *
 * Forks and execs PROGRAM, waits for it with wait4() and writes one line to
 * the file REPORT:
 *
 *   status <raw wait status> wall <s> utime <s> stime <s> maxrss_kib <n>
 *
 * Why not os.wait4() straight from Python: Linux folds the RSS high-water mark
 * of the pre-exec address space into ru_maxrss, and a child forked (or
 * vforked) from the Python driver starts from Python's ~15 MiB.  Forking from
 * this tiny process instead makes the child's peak RSS its own.
 *
 * If BENCH_PRELOAD is set, it becomes the child's LD_PRELOAD (and the wrapper
 * itself runs without the allocator under test).  The exit status of spawn
 * is 0 when the report was written, 125 if it could not run at all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: spawn REPORT PROGRAM [ARGS...]\n");
        return 125;
    }
    const char *preload = getenv("BENCH_PRELOAD");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("spawn: fork");
        return 125;
    }
    if (pid == 0) {
        if (preload && *preload) setenv("LD_PRELOAD", preload, 1);
        unsetenv("BENCH_PRELOAD");
        execvp(argv[2], argv + 2);
        fprintf(stderr, "spawn: exec %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("spawn: wait4");
            return 125;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror("spawn: report");
        return 125;
    }
    fprintf(f, "status %d wall %.9f utime %.6f stime %.6f maxrss_kib %ld\n", status,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9,
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6,
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6, ru.ru_maxrss);
    return fclose(f) == 0 ? 0 : 125;
}
