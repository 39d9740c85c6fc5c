/*
 * swiftmalloc-spawn: the measuring helper of the `swiftmalloc` command
 * (Sources/SwiftMallocCLI/Spawn.swift), installed as
 * libexec/swiftmalloc/spawn. Not meant to be run by hand.
 *
 *   spawn REPORT PROGRAM [ARGS...]
 *
 * Forks, execs PROGRAM in the child, waits for it with wait4() and writes
 * one line to the file REPORT:
 *
 *   pid <pid> status <raw wait status> wall <s> utime <s> stime <s> maxrss_kib <n>
 *
 * or, when PROGRAM cannot be started, "pid <pid> exec-error <errno>" (exit
 * 127). While the program runs, the file holds "pid <pid>" alone.
 *
 * Why a helper: Linux folds the RSS high-water mark of the address space a
 * process had before exec into its ru_maxrss. A program started straight
 * from the tool (posix_spawn shares the tool's memory until exec) would
 * report at least the tool's own peak; forked from this small process, its
 * ru_maxrss is its own.
 *
 * SWIFTMALLOC_SPAWN_PRELOAD becomes the child's LD_PRELOAD, so the helper
 * itself never runs on the allocator under test (nor writes its statistics
 * or live page). While it waits, SIGINT and SIGQUIT are ignored (the
 * terminal sends them to the program too) and SIGTERM and SIGHUP are passed
 * on to the program; the child starts with every signal at its default.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t child;

static void pass_on(int sig) {
  if (child > 0) kill(child, sig);
}

static int write_report(const char *path, const char *line) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return -1;
  fputs(line, f);
  return fclose(f);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s REPORT PROGRAM [ARGS...] (the measuring helper of swiftmalloc)\n", argv[0]);
    return 125;
  }
  const char *preload = getenv("SWIFTMALLOC_SPAWN_PRELOAD");
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) { perror("swiftmalloc-spawn: pipe"); return 125; }
  struct sigaction ignore = {.sa_handler = SIG_IGN}, forward = {.sa_handler = pass_on}, saved_int, saved_quit;
  sigaction(SIGINT, &ignore, &saved_int);
  sigaction(SIGQUIT, &ignore, &saved_quit);
  sigaction(SIGTERM, &forward, NULL);
  sigaction(SIGHUP, &forward, NULL);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) { perror("swiftmalloc-spawn: fork"); return 125; }
  if (pid == 0) {
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    if (preload != NULL && *preload != 0) setenv("LD_PRELOAD", preload, 1);
    unsetenv("SWIFTMALLOC_SPAWN_PRELOAD");
    execvp(argv[2], argv + 2);
    int e = errno;
    if (write(pipefd[1], &e, sizeof e) < 0) {}
    _exit(127);
  }
  child = pid;
  close(pipefd[1]);
  char line[256];
  snprintf(line, sizeof line, "pid %d\n", (int)pid);
  write_report(argv[1], line);
  int exec_errno = 0;
  ssize_t got;
  while ((got = read(pipefd[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {}
  int status = 0;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) { perror("swiftmalloc-spawn: wait4"); return 125; }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (got == (ssize_t)sizeof exec_errno) {
    snprintf(line, sizeof line, "pid %d exec-error %d\n", (int)pid, exec_errno);
    write_report(argv[1], line);
    return 127;
  }
  snprintf(line, sizeof line, "pid %d status %d wall %.9f utime %.6f stime %.6f maxrss_kib %ld\n", (int)pid, status,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9,
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6, ru.ru_maxrss);
  if (write_report(argv[1], line) != 0) { perror("swiftmalloc-spawn: report"); return 125; }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}
