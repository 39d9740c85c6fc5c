/*
 * common.h: helpers shared by the C tests in Tests/C.
 *
 * Every test program is built and run by Tests/C/run.sh in up to three modes:
 *   preload  plain executable, LD_PRELOAD=build/libswiftmalloc.so
 *   static   linked against build/libswiftmalloc.a
 *   glibc    plain executable, no preload (validates the tests themselves)
 * run.sh exports SWM_TEST_EXPECT=swiftmalloc or SWM_TEST_EXPECT=glibc; the
 * test checks that the allocator it actually got is the expected one, so a
 * test can never pass against the wrong malloc.
 *
 * Checks that hold only for swiftmalloc (message format, SWIFTMALLOC_*
 * variables, rules that differ from glibc 2.36) are guarded by `ours`.
 */
#ifndef SWM_TEST_COMMON_H
#define SWM_TEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gnu/libc-version.h>

/* C23 names that glibc 2.36's headers lack. Weak: with plain glibc they are
 * NULL at run time and the checks that need them are skipped. */
extern void free_sized(void *p, size_t size) __attribute__((weak));
extern void free_aligned_sized(void *p, size_t alignment, size_t size) __attribute__((weak));

static int t_failures;
static int t_checks;
static int ours;           /* 1 when the process runs on swiftmalloc */
static int secure;         /* 1 when it is the secure library (run.sh's mode secure: SWM_TEST_SECURE=1) */
static const char *t_name = "test";
static inline int t_finish(void);

/* Records one check; on failure prints where, the condition and the message.
 * Returns whether it held. Thread safe. */
__attribute__((format(printf, 5, 6)))
static int t_check(int ok, const char *text, const char *file, int line, const char *fmt, ...) {
  __atomic_fetch_add(&t_checks, 1, __ATOMIC_RELAXED);
  if (ok) return 1;
  __atomic_fetch_add(&t_failures, 1, __ATOMIC_RELAXED);
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "FAIL %s:%d: %s: %s\n", file, line, text, msg);
  fflush(stderr);
  return 0;
}

/* Each evaluates `cond` exactly once. */
#define CHECK(cond, ...) t_check(!!(cond), #cond, __FILE__, __LINE__, __VA_ARGS__)

/* Stops the test at once (when going on makes no sense). */
#define REQUIRE(cond, ...)                                                      \
  do {                                                                          \
    if (!t_check(!!(cond), #cond, __FILE__, __LINE__, __VA_ARGS__)) exit(t_finish()); \
  } while (0)

/* Hides a value from the optimiser: it cannot assume anything about the
 * result (alignment of a malloc result, zero contents after calloc, ...), so
 * the checks on it really run. */
static inline uintptr_t opaque_addr(const void *p) {
  uintptr_t v = (uintptr_t)p;
  __asm__ volatile("" : "+r"(v));
  return v;
}
static inline void *launder(void *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}
/* Makes an allocation observable, so a malloc/free pair is never elided. */
static inline void sink(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

/* Sizes pass through V() so the compiler neither folds nor warns about the
 * requests (absurd ones included). Thread-local: tests call it from threads. */
static __thread volatile size_t t_vsize;
static inline size_t V(size_t n) { t_vsize = n; return t_vsize; }

static inline int is_aligned(const void *p, size_t a) { return (opaque_addr(p) & (a - 1)) == 0; }

/* Fills [p, p+n) with a pattern derived from `seed`; verify returns the
 * offset of the first wrong byte or -1. */
static inline unsigned char pattern_byte(uintptr_t seed, size_t i) {
  uint64_t x = (uint64_t)seed * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull;
  return (unsigned char)(x >> 56) ^ (unsigned char)i;
}
static inline void fill(void *p, size_t n, uintptr_t seed) {
  unsigned char *c = p;
  for (size_t i = 0; i < n; i++) c[i] = pattern_byte(seed, i);
}
static inline long verify(const void *p, size_t n, uintptr_t seed) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != pattern_byte(seed, i)) return (long)i;
  return -1;
}

/* Word-wise variant for the bulk tests (much faster than byte patterns):
 * every 8-byte word and every tail byte depends on `seed` and its offset. */
static inline void fill_fast(void *p, size_t n, uint64_t seed) {
  uint64_t *w = p;
  size_t words = n / 8;
  uint64_t v = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < words; i++) w[i] = v + i * 0xD1B54A32D192ED03ull;
  unsigned char *c = p;
  for (size_t i = words * 8; i < n; i++) c[i] = (unsigned char)(v >> (i % 8)) ^ (unsigned char)i;
}
static inline long verify_fast(const void *p, size_t n, uint64_t seed) {
  const uint64_t *w = p;
  size_t words = n / 8;
  uint64_t v = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < words; i++)
    if (w[i] != v + i * 0xD1B54A32D192ED03ull) return (long)(i * 8);
  const unsigned char *c = p;
  for (size_t i = words * 8; i < n; i++)
    if (c[i] != ((unsigned char)(v >> (i % 8)) ^ (unsigned char)i)) return (long)i;
  return -1;
}

/* A fast xorshift generator (tests must be reproducible). */
static inline uint64_t rng_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* VmRSS of this process in KiB. */
static inline long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) { kib = strtol(line + 6, NULL, 10); break; }
  fclose(f);
  return kib;
}

/* Runs malloc_stats() with stderr captured; returns what it printed (static
 * buffer). */
static inline const char *capture_malloc_stats(void) {
  static char buf[8192];
  buf[0] = 0;
  fflush(stderr);
  int saved = dup(2);
  FILE *t = tmpfile();
  if (saved < 0 || !t) return buf;
  dup2(fileno(t), 2);
  malloc_stats();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rewind(t);
  size_t n = fread(buf, 1, sizeof buf - 1, t);
  buf[n] = 0;
  fclose(t);
  return buf;
}

/* 1 when malloc_stats() is swiftmalloc's: the allocator of this process. */
static inline int detect_swiftmalloc(void) {
  return strstr(capture_malloc_stats(), "swiftmalloc statistics") != NULL;
}

/* The "thread caches" count from swiftmalloc's malloc_stats (-1 if absent). */
static inline long swm_thread_caches(void) {
  const char *s = strstr(capture_malloc_stats(), "thread caches");
  if (!s) return -1;
  return strtol(s + strlen("thread caches"), NULL, 10);
}

static inline int glibc_at_least(int major, int minor) {
  int M = 0, m = 0;
  sscanf(gnu_get_libc_version(), "%d.%d", &M, &m);
  return M > major || (M == major && m >= minor);
}

/* First call of every test. Checks that the allocator in use is the one
 * run.sh expects (SWM_TEST_EXPECT), and that libc's own allocations (strdup)
 * and ours agree: with a mismatched malloc/free pair this would crash. */
static inline void t_init(const char *name) {
  t_name = name;
  setvbuf(stdout, NULL, _IOLBF, 0);
  ours = detect_swiftmalloc();
  secure = ours && getenv("SWM_TEST_SECURE") != NULL;
  const char *expect = getenv("SWM_TEST_EXPECT");
  if (expect && strcmp(expect, "swiftmalloc") == 0)
    REQUIRE(ours, "expected swiftmalloc to be the process allocator, but malloc_stats() is not ours");
  if (expect && strcmp(expect, "glibc") == 0)
    REQUIRE(!ours, "expected plain glibc malloc, but swiftmalloc is loaded");
  char *s = strdup("libc allocates through the same malloc");
  CHECK(s != NULL, "strdup failed");
  if (ours) CHECK(malloc_usable_size(s) >= strlen(s) + 1, "usable size of a strdup block");
  free(s);
}

static inline int t_finish(void) {
  printf("%s: %d checks, %d failed (%s)\n", t_name, t_checks, t_failures,
         ours ? "swiftmalloc" : "glibc");
  fflush(stdout);
  return t_failures ? 1 : 0;
}

/* Runs fn in a forked child with stderr captured into `err` (cap bytes).
 * Returns the wait status; a child that does not end within `seconds` is
 * killed (status shows SIGKILL). */
static inline int run_in_child(void (*fn)(void *), void *arg, char *err, size_t cap, unsigned seconds) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    alarm(seconds);
    /* no core files for the expected aborts */
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    fn(arg);
    _exit(0);
  }
  close(fds[1]);
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fds[0], err + n, cap - 1 - n);
    if (r <= 0) break;
    n += (size_t)r;
    if (n == cap - 1) { char sinkbuf[256]; while (read(fds[0], sinkbuf, sizeof sinkbuf) > 0) {} break; }
  }
  err[n] = 0;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

/* Runs this program again (/proc/self/exe) as `argv0 mode`, with every
 * SWIFTMALLOC_*, MALLOC_* and GLIBC_TUNABLES variable of ours removed from
 * its environment and `assignments` (NULL-terminated, "NAME=value") added;
 * its stdout goes to /dev/null, its stderr into `err` (cap bytes). Returns
 * the wait status; *child gets its pid. A child still running after 30 s is
 * killed. */
static inline int run_self_env(const char *argv0, const char *mode, const char *const *assignments, char *err,
                               size_t cap, pid_t *child) {
  extern char **environ;
  size_t n = 0, extra = 0;
  while (environ[n]) n++;
  while (assignments[extra]) extra++;
  char **env = calloc(n + extra + 1, sizeof *env);
  if (!env) return -1;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "SWIFTMALLOC_", 12) != 0 && strncmp(environ[i], "MALLOC_", 7) != 0 &&
        strncmp(environ[i], "GLIBC_TUNABLES=", 15) != 0)
      env[k++] = environ[i];
  for (size_t i = 0; i < extra; i++) env[k++] = (char *)assignments[i];
  env[k] = NULL;
  int fds[2];
  if (pipe(fds) != 0) { free(env); return -1; }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) { free(env); return -1; }
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    alarm(30);
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);  /* no core files for the expected aborts */
    char *argv[] = {(char *)argv0, (char *)mode, NULL};
    execve("/proc/self/exe", argv, env);
    _exit(127);
  }
  close(fds[1]);
  if (child) *child = pid;
  size_t got = 0;
  ssize_t r;
  while (got < cap - 1 && (r = read(fds[0], err + got, cap - 1 - got)) > 0) got += (size_t)r;
  err[got] = 0;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  free(env);
  return status;
}

/* A child mode of heap.c and options.c: 0 when a block of `not_mmapped`
 * bytes comes from the heap and one of `mmapped` bytes is an mmap block
 * (mallinfo2's hblkhd), i.e. the mmap threshold lies between them. */
static inline int child_threshold(size_t not_mmapped, size_t mmapped) {
  struct mallinfo2 a = mallinfo2();
  void *p = malloc(V(not_mmapped));
  if (!p) return 3;
  memset(p, 1, not_mmapped);
  struct mallinfo2 b = mallinfo2();
  if (b.hblkhd != a.hblkhd) { fprintf(stderr, "child: %zu-byte block was mmapped\n", not_mmapped); return 1; }
  void *q = malloc(V(mmapped));
  if (!q) return 3;
  struct mallinfo2 c = mallinfo2();
  if (c.hblkhd < b.hblkhd + mmapped) { fprintf(stderr, "child: %zu-byte block was not mmapped\n", mmapped); return 2; }
  free(q);
  free(p);
  return 0;
}

static inline int text_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static inline void describe_status(int status, char *out, size_t cap) {
  if (WIFEXITED(status)) snprintf(out, cap, "exit %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status)) snprintf(out, cap, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else snprintf(out, cap, "status 0x%x", status);
}

#endif
