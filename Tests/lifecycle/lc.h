/*
 * lc.h: what the lifecycle tests (Tests/lifecycle, issue #10) share.
 *
 * run.sh runs each program in one of four modes and says which allocator the
 * process must find:
 *   SWM_TEST_MODE    preload | static | secure | glibc
 *   SWM_TEST_EXPECT  swiftmalloc | glibc
 * lc_init() checks it (mirrors Tests/C/common.h, but by symbol, not by the
 * malloc_stats format, which issue #10 changes): on swiftmalloc, malloc and
 * swm_malloc live in the same object: libswiftmalloc*.so when preloaded, the
 * executable itself when linked with libswiftmalloc.a. A test can never pass
 * against the wrong malloc.
 *
 * Hangs: lc_watchdog() arms alarm(); when it fires the program prints
 * "<LABEL>: <test>: ..." (HANG or DEADLOCK) and exits 3. Children are waited
 * for with a deadline (lc_wait_child), so a child stuck in fork is killed and
 * reported, never waited for forever.
 */
#ifndef LC_H
#define LC_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "swiftmalloc.h"

/* The swm_ entry points: linked directly in the .static builds (run.sh adds
 * -DLC_STATIC), looked up at run time otherwise (NULL under plain glibc). */
#ifdef LC_STATIC
#define LC_SWM(fn) ((void *)&fn)
#else
#define LC_SWM(fn) dlsym(RTLD_DEFAULT, #fn)
#endif

static const char *lc_name = "test";
static int lc_fails;
static int lc_ours;                  /* 1: the process allocator is swiftmalloc */
static const char *lc_label = "HANG";
static const char *lc_what = "did not finish in time";

#define CHECK(cond, ...) lc_check(!!(cond), #cond, __LINE__, __VA_ARGS__)
#define REQUIRE(cond, ...) do { if (!CHECK(cond, __VA_ARGS__)) exit(lc_finish()); } while (0)

__attribute__((format(printf, 4, 5)))
static inline int lc_check(int ok, const char *text, int line, const char *fmt, ...) {
  if (ok) return 1;
  __atomic_fetch_add(&lc_fails, 1, __ATOMIC_RELAXED);
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stdout, "FAIL %s line %d: %s (%s)\n", lc_name, line, msg, text);
  fflush(stdout);
  return 0;
}

static inline int lc_finish(void) {
  printf("%s: %s (%s)\n", lc_name, lc_fails ? "FAIL" : "PASS", lc_ours ? "swiftmalloc" : "glibc malloc");
  fflush(stdout);
  return lc_fails ? 1 : 0;
}

/* Async-signal-safe: writes "<label>: <test>: <what>" and exits 3. */
static inline void lc_on_alarm(int sig) {
  (void)sig;
  const char *parts[] = {lc_label, ": ", lc_name, ": ", lc_what, "\n"};
  for (unsigned i = 0; i < sizeof parts / sizeof parts[0]; i++)
    if (write(1, parts[i], strlen(parts[i])) < 0) break;
  _exit(3);
}

/* (Re)arms the watchdog: label is "HANG" or "DEADLOCK". */
static inline void lc_watchdog(unsigned seconds, const char *label, const char *what) {
  lc_label = label;
  lc_what = what;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = lc_on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  alarm(seconds);
}

static inline double lc_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Waits for pid at most `seconds`. Returns its wait status, or -1 when it
 * did not end in time (it is then killed and reaped). */
static inline int lc_wait_child(pid_t pid, double seconds) {
  double end = lc_now() + seconds;
  int status;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -2;
    if (lc_now() > end) break;
    usleep(500);
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return -1;
}

/* "exit 0", "hung (killed)", "signal 11 (Segmentation fault)", ... */
static inline const char *lc_status_text(int status, char *buf, size_t cap) {
  if (status == -1) snprintf(buf, cap, "hung (killed after the deadline)");
  else if (status == -2) snprintf(buf, cap, "waitpid failed");
  else if (WIFEXITED(status)) snprintf(buf, cap, "exit %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status)) snprintf(buf, cap, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else snprintf(buf, cap, "status 0x%x", status);
  return buf;
}

static inline int lc_secure_expected(void) {
  const char *s = getenv("SWM_TEST_SECURE");
  return s && strcmp(s, "1") == 0;
}

/* Checks that the process runs on the allocator run.sh expects. */
static inline void lc_check_allocator(void) {
  const char *mode = getenv("SWM_TEST_MODE");
  const char *expect = getenv("SWM_TEST_EXPECT");
  void *swm = LC_SWM(swm_malloc);
  void *mal = (void *)&malloc;
  Dl_info m, s, self;
  int have_m = dladdr(mal, &m) != 0;
  lc_ours = swm != NULL && (!have_m || (dladdr(swm, &s) && s.dli_fbase == m.dli_fbase));
  const char *where = have_m && m.dli_fname ? m.dli_fname : "?";
  if (expect && strcmp(expect, "swiftmalloc") == 0) {
    REQUIRE(lc_ours, "expected swiftmalloc, but malloc is in %s and swm_malloc is %p", where, swm);
    if (mode && strcmp(mode, "static") == 0 && have_m && dladdr((void *)&lc_check_allocator, &self))
      REQUIRE(self.dli_fbase == m.dli_fbase, "static mode: malloc is in %s, not in the executable", where);
    if (mode && strcmp(mode, "preload") == 0 && have_m)
      REQUIRE(strstr(where, "/libswiftmalloc.so") != NULL, "preload mode: malloc is in %s", where);
    if (mode && strcmp(mode, "secure") == 0 && have_m)
      REQUIRE(strstr(where, "/libswiftmalloc-secure.so") != NULL, "secure mode: malloc is in %s", where);
  }
  if (expect && strcmp(expect, "glibc") == 0) {
    REQUIRE(!lc_ours, "expected glibc malloc, but swiftmalloc is the allocator");
    if (have_m) REQUIRE(strstr(where, "libc.so") != NULL, "expected glibc malloc, but malloc is in %s", where);
  }
  if (lc_secure_expected()) {
    /* secure mode reports the requested size as usable size (README) */
    void *p = malloc(13);
    REQUIRE(malloc_usable_size(p) == 13, "SWM_TEST_SECURE=1 but secure mode is off (usable size %zu)",
            malloc_usable_size(p));
    free(p);
  }
}

/* First call of every test: names it, arms the watchdog (with lc_label and
 * lc_what, which a test may set first), checks the allocator. */
static inline void lc_init(const char *name, unsigned watchdog_seconds) {
  lc_name = name;
  setvbuf(stdout, NULL, _IOLBF, 0);
  lc_watchdog(watchdog_seconds, lc_label, lc_what);
  lc_check_allocator();
}

/* mallinfo2().uordblks: bytes in use (swiftmalloc counts thread caches). */
static inline size_t lc_in_use(void) { return mallinfo2().uordblks; }

#endif
