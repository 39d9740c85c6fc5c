/* pools_common.h: what the pool tests (pools_*.c) share: a CHECK that counts
 * failures, and a helper that runs a misuse case in a child. Each pool test
 * exits 0 when every check passes. */
#ifndef POOLS_COMMON_H
#define POOLS_COMMON_H
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "swiftmalloc.h"

static int failures;
#define CHECK(cond) do { if (!(cond)) { printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

/* Runs fn in a child; true when it died of SIGABRT after writing `expect` on
 * stderr. Otherwise what the child wrote is shown. */
static inline int aborts_with(void (*fn)(void), const char *expect) {
  int fds[2];
  if (pipe(fds) != 0) return 0;
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    fn();
    _exit(0);
  }
  close(fds[1]);
  char out[512] = {0};
  size_t n = 0;
  ssize_t r;
  while (n < sizeof out - 1 && (r = read(fds[0], out + n, sizeof out - 1 - n)) > 0) n += (size_t)r;
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  int ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(out, expect) != NULL;
  if (!ok) printf("  child said: %s", out);
  return ok;
}

#endif
