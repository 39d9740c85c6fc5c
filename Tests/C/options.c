/*
 * options.c: the environment, as glibc's users and swiftmalloc's set it
 * (swiftmalloc only; each case runs this program again with a variable set,
 * and the child shows the knob's effect):
 *   - GLIBC_TUNABLES glibc.malloc.{mmap_threshold, trim_threshold, top_pad,
 *     mmap_max, perturb, check, arena_max}, MALLOC_*_ and SWIFTMALLOC_*, in
 *     that order of priority;
 *   - MALLOC_PERTURB_: allocated bytes are the complement of the byte, freed
 *     ones the byte; glibc.malloc.check / MALLOC_CHECK_: an overflow of one
 *     byte stops free;
 *   - booleans as 1/0, true/false, yes/no, on/off; TRIM_THRESHOLD=-1;
 *   - the messages: a bad value (variable, problem, range, what is kept), an
 *     unknown SWIFTMALLOC_ name with the nearest one, glibc names we ignore,
 *     MALLOC_ARENA_MAX, SWIFTMALLOC_VERBOSE; each printed once.
 */
#include "common.h"
#include <pthread.h>
#include "swiftmalloc.h"  /* SWIFTMALLOC_VERSION */

/* MARK: the children: each returns 0 when it saw what its name says */

/* 0 when freeing 4 MiB of page runs at the top of the heap gave it back. */
static int child_trims(void) {
  enum { N = 40 };
  void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = malloc(V(100 << 10));
    if (!p[i]) return 3;
    memset(p[i], 1, 100 << 10);
  }
  struct mallinfo2 full = mallinfo2();
  for (int i = N - 1; i >= 0; i--) free(p[i]);
  struct mallinfo2 after = mallinfo2();
  fprintf(stderr, "child: arena %zu after the frees, %zu before\n", after.arena, full.arena);
  return after.arena + (2 << 20) < full.arena ? 0 : 10;
}

/* 0 when a 2 MiB block comes from the heap. */
static int child_no_mmap(void) {
  void *p = malloc(V(2 << 20));
  sink(p);
  struct mallinfo2 m = mallinfo2();
  free(p);
  return p && m.hblks == 0 ? 0 : 1;
}

/* The heap's size after the first small block. */
static int child_top_pad(size_t at_least, size_t below) {
  void *p = malloc(V(16));
  sink(p);
  struct mallinfo2 m = mallinfo2();
  free(p);
  if (m.arena >= at_least && m.arena < below) return 0;
  fprintf(stderr, "child: arena %zu, want %zu..%zu\n", m.arena, at_least, below);
  return 1;
}

/* MALLOC_PERTURB_=165: malloc, memalign and realloc's new bytes read 0x5a,
 * calloc's zero; freed blocks read 0xa5 (past their first 16 bytes, the
 * free-list link and the freed tag), but for small blocks in secure mode,
 * which its quarantine zeroes whole. */
static int child_perturb(void) {
  const unsigned char fill = (unsigned char)~165u, freed = 165;
  const unsigned char freed_small = getenv("SWM_TEST_SECURE") ? 0 : freed;
  size_t sizes[] = {1, 40, 1000, 20000, 50000, 300000};
  for (int i = 0; i < 6; i++) {
    unsigned char *p = malloc(V(sizes[i])), *z = calloc(1, V(sizes[i]));
    if (!p || !z) return 3;
    for (size_t k = 0; k < sizes[i]; k++)
      if (p[k] != fill || z[k] != 0) { fprintf(stderr, "child: %zu bytes: byte %zu is %#x (calloc %#x)\n", sizes[i], k, p[k], z[k]); return 1; }
    free(z);
    free(p);
  }
  unsigned char *a = memalign(64, V(200));
  if (!a || a[199] != fill) return 2;
  free(a);
  /* freed: small blocks and a page run with a live block after it */
  unsigned char *small = malloc(V(200)), *run = malloc(V(40000)), *keep = malloc(V(40000));
  if (!small || !run || !keep) return 3;
  unsigned char *s = launder(small), *r = launder(run);
  free(small);
  free(run);
  for (size_t k = 16; k < 200; k++)
    if (s[k] != freed_small) { fprintf(stderr, "child: freed small block: byte %zu is %#x\n", k, s[k]); return 4; }
  for (size_t k = 16; k < 40000; k += 97)
    if (r[k] != freed) { fprintf(stderr, "child: freed page run: byte %zu is %#x\n", k, r[k]); return 5; }
  free(keep);
  return 0;
}

/* glibc.malloc.check: a one-byte overflow is found by free (the child is
 * expected to die); the usable size is the size asked for. */
static int child_overflow(void) {
  char *p = malloc(V(20));
  if (!p || malloc_usable_size(p) != 20) { fprintf(stderr, "child: usable size %zu\n", malloc_usable_size(p)); return 2; }
  char *q = launder(p);
  q[20] = 'x';
  free(p);
  return 0;  /* not stopped */
}

/* 0 when this process runs in secure mode (the usable size is the request). */
static int child_secure(void) {
  void *p = malloc(V(5));
  sink(p);
  size_t usable = malloc_usable_size(p);
  free(p);
  return usable == 5 ? 0 : 1;
}

static void *churn(void *arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++) free(malloc(V((size_t)i * 8)));
  return NULL;
}

/* Some work on four threads and a fork: messages must still appear once. */
static int child_busy(void) {
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, churn, NULL);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  pid_t pid = fork();
  if (pid == 0) { churn(NULL); _exit(0); }
  int status;
  waitpid(pid, &status, 0);
  return 0;
}

static int child(const char *mode) {
  if (strcmp(mode, "--threshold-1m") == 0) return child_threshold(512 << 10, 2 << 20);
  if (strcmp(mode, "--threshold-64k") == 0) return child_threshold(60 << 10, 100 << 10);
  if (strcmp(mode, "--threshold-default") == 0) return child_threshold(100 << 10, 200 << 10);
  if (strcmp(mode, "--no-mmap") == 0) return child_no_mmap();
  if (strcmp(mode, "--trims") == 0) return child_trims();
  if (strcmp(mode, "--top-pad-8m") == 0) return child_top_pad(8 << 20, 64 << 20);
  if (strcmp(mode, "--top-pad-default") == 0) return child_top_pad(4096, 2 << 20);
  if (strcmp(mode, "--perturb") == 0) return child_perturb();
  if (strcmp(mode, "--overflow") == 0) return child_overflow();
  if (strcmp(mode, "--secure") == 0) return child_secure();
  if (strcmp(mode, "--busy") == 0) return child_busy();
  return 64;
}

/* MARK: the checks */

static char err[8192];
static pid_t pid;

/* Runs `mode` with the variables; 1 when it exited with `want` (or was
 * killed by SIGABRT when want < 0). */
static int run(const char *mode, int want, const char *const *vars) {
  int st = run_self_env("options", mode, vars, err, sizeof err, &pid);
  if (want < 0) return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
  return WIFEXITED(st) && WEXITSTATUS(st) == want;
}

#define VARS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_priority(void) {
  CHECK(run("--threshold-1m", 0, VARS("SWIFTMALLOC_MMAP_THRESHOLD=1M", "MALLOC_MMAP_THRESHOLD_=65536",
                                     "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536")) && err[0] == 0,
        "SWIFTMALLOC_ must win over MALLOC_*_ and GLIBC_TUNABLES: %s", err);
  CHECK(run("--threshold-1m", 0, VARS("GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536", "MALLOC_MMAP_THRESHOLD_=1048576")),
        "MALLOC_MMAP_THRESHOLD_ must win over GLIBC_TUNABLES: %s", err);
  CHECK(run("--threshold-1m", 0, VARS("GLIBC_TUNABLES=glibc.pthread.rseq=0:glibc.malloc.mmap_threshold=1048576")),
        "GLIBC_TUNABLES glibc.malloc.mmap_threshold=1048576: %s", err);
  CHECK(run("--threshold-64k", 0, VARS("MALLOC_MMAP_THRESHOLD_=65536")), "MALLOC_MMAP_THRESHOLD_=65536: %s", err);
  CHECK(run("--threshold-default", 0, VARS("GLIBC_TUNABLES=glibc.rtld.optional_static_tls=512")) && err[0] == 0,
        "tunables of other namespaces change nothing and say nothing: %s", err);
  /* a bad value keeps what a lower-ranked name gave */
  CHECK(run("--threshold-1m", 0, VARS("MALLOC_MMAP_THRESHOLD_=1M", "SWIFTMALLOC_MMAP_THRESHOLD=12Q")) &&
            strcmp(err, "swiftmalloc: SWIFTMALLOC_MMAP_THRESHOLD=12Q: not a size (use bytes or K/M/G, 0..32M); "
                        "keeping 1M\n") == 0,
        "a bad SWIFTMALLOC_ value over a good MALLOC_ one: %s", err);
}

static void test_trim_and_pad(void) {
  CHECK(run("--trims", 0, VARS("SWIFTMALLOC_STATS=0")), "by default freeing the top 4 MiB trims: %s", err);
  CHECK(run("--trims", 10, VARS("SWIFTMALLOC_TRIM_THRESHOLD=-1")) && strstr(err, "swiftmalloc:") == NULL,
        "SWIFTMALLOC_TRIM_THRESHOLD=-1 must never trim: %s", err);
  CHECK(run("--trims", 10, VARS("MALLOC_TRIM_THRESHOLD_=-1")), "MALLOC_TRIM_THRESHOLD_=-1: %s", err);
  CHECK(run("--trims", 10, VARS("GLIBC_TUNABLES=glibc.malloc.trim_threshold=1073741824")),
        "glibc.malloc.trim_threshold=1G: %s", err);
  CHECK(run("--top-pad-default", 0, VARS("SWIFTMALLOC_STATS=0")), "default top pad: %s", err);
  CHECK(run("--top-pad-8m", 0, VARS("SWIFTMALLOC_TOP_PAD=8M")), "SWIFTMALLOC_TOP_PAD=8M: %s", err);
  CHECK(run("--top-pad-8m", 0, VARS("MALLOC_TOP_PAD_=8388608")), "MALLOC_TOP_PAD_=8388608: %s", err);
  CHECK(run("--top-pad-8m", 0, VARS("GLIBC_TUNABLES=glibc.malloc.top_pad=8388608")), "glibc.malloc.top_pad: %s", err);
  CHECK(run("--no-mmap", 0, VARS("MALLOC_MMAP_MAX_=0")), "MALLOC_MMAP_MAX_=0: %s", err);
  CHECK(run("--no-mmap", 0, VARS("GLIBC_TUNABLES=glibc.malloc.mmap_max=0")), "glibc.malloc.mmap_max=0: %s", err);
  CHECK(run("--no-mmap", 0, VARS("SWIFTMALLOC_MMAP_MAX=0")), "SWIFTMALLOC_MMAP_MAX=0: %s", err);
  CHECK(run("--threshold-default", 0, VARS("SWIFTMALLOC_MMAP_MAX=100")), "SWIFTMALLOC_MMAP_MAX=100: %s", err);
}

static void test_perturb_and_check(void) {
  CHECK(run("--perturb", 0, VARS("MALLOC_PERTURB_=165")) && err[0] == 0, "MALLOC_PERTURB_=165: %s", err);
  CHECK(run("--perturb", 0, VARS("GLIBC_TUNABLES=glibc.malloc.perturb=165")), "glibc.malloc.perturb=165: %s", err);
  CHECK(run("--perturb", 0, VARS("SWIFTMALLOC_PERTURB=0xa5")), "SWIFTMALLOC_PERTURB=0xa5: %s", err);
  CHECK(run("--perturb", 1, VARS("SWIFTMALLOC_PERTURB=0")), "SWIFTMALLOC_PERTURB=0 is off: %s", err);
  CHECK(run("--overflow", -1, VARS("MALLOC_CHECK_=3")) && strstr(err, "free(): heap overflow past the end of 0x"),
        "MALLOC_CHECK_=3: a one-byte overflow must stop free: %s", err);
  CHECK(run("--overflow", -1, VARS("GLIBC_TUNABLES=glibc.malloc.check=1")) &&
            strstr(err, "free(): heap overflow past the end of 0x"),
        "glibc.malloc.check=1: %s", err);
  /* the secure library's canaries cannot be switched off */
  CHECK(secure ? run("--overflow", -1, VARS("MALLOC_CHECK_=0")) : run("--overflow", 2, VARS("MALLOC_CHECK_=0")),
        "MALLOC_CHECK_=0 is off: %s", err);
}

static void test_booleans(void) {
  const char *yes[] = {"SWIFTMALLOC_SECURE=1", "SWIFTMALLOC_SECURE=true", "SWIFTMALLOC_SECURE=YES",
                       "SWIFTMALLOC_SECURE=on"};
  const char *no[] = {"SWIFTMALLOC_SECURE=0", "SWIFTMALLOC_SECURE=false", "SWIFTMALLOC_SECURE=no",
                      "SWIFTMALLOC_SECURE=Off"};
  for (int i = 0; i < 4; i++) {
    CHECK(run("--secure", 0, VARS(yes[i])) && err[0] == 0, "%s: not secure mode: %s", yes[i], err);
    /* the secure library is secure whatever the variable says */
    CHECK(run("--secure", secure ? 0 : 1, VARS(no[i])) && err[0] == 0, "%s: secure mode: %s", no[i], err);
  }
  CHECK(run("--secure", secure ? 0 : 1, VARS("SWIFTMALLOC_SECURE=maybe")) &&
            strcmp(err, secure ? "swiftmalloc: SWIFTMALLOC_SECURE=maybe: not a boolean (use 1/0, true/false, yes/no, on/off); "
                                 "keeping 1\n"
                               : "swiftmalloc: SWIFTMALLOC_SECURE=maybe: not a boolean (use 1/0, true/false, yes/no, on/off); "
                                 "keeping 0\n") == 0,
        "SWIFTMALLOC_SECURE=maybe: %s", err);
}

/* Each message is one line, printed once however busy the process is. */
static void test_messages(void) {
  static const struct { const char *var, *line; } cases[] = {
    {"SWIFTMALLOC_MMAP_THRESHOLD=12Q",
     "swiftmalloc: SWIFTMALLOC_MMAP_THRESHOLD=12Q: not a size (use bytes or K/M/G, 0..32M); keeping 128K\n"},
    {"SWIFTMALLOC_MMAP_THRESHOLD=64M", "swiftmalloc: SWIFTMALLOC_MMAP_THRESHOLD=64M: out of range (0..32M); keeping 128K\n"},
    {"SWIFTMALLOC_DECAY_MS=5s", "swiftmalloc: SWIFTMALLOC_DECAY_MS=5s: not a number (0..3600000); keeping 5000\n"},
    {"MALLOC_PERTURB_=300", "swiftmalloc: MALLOC_PERTURB_=300: out of range (0..255); keeping 0\n"},
    {"SWIFTMALLOC_STATS=xml", "swiftmalloc: SWIFTMALLOC_STATS=xml: not a report format (use 0, 1 or text, json); keeping 0\n"},
    {"SWIFTMALLOC_TRIM_THRESHOLD=-2",
     "swiftmalloc: SWIFTMALLOC_TRIM_THRESHOLD=-2: out of range (any size, or -1 for never); keeping 128K\n"},
    {"GLIBC_TUNABLES=glibc.malloc.top_pad=lots",
     "swiftmalloc: GLIBC_TUNABLES: glibc.malloc.top_pad=lots: not a size (use bytes or K/M/G, 0..32768G); keeping 64K\n"},
    {"SWIFTMALLOC_MMAP_TRESHOLD=1M",
     "swiftmalloc: SWIFTMALLOC_MMAP_TRESHOLD is not a swiftmalloc variable (did you mean SWIFTMALLOC_MMAP_THRESHOLD?); "
     "ignored\n"},
    {"SWIFTMALLOC_STAT=1", "swiftmalloc: SWIFTMALLOC_STAT is not a swiftmalloc variable (did you mean SWIFTMALLOC_STATS?); ignored\n"},
    {"GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.mmap_threshold=131072:glibc.malloc.mxfast=0",
     "swiftmalloc: GLIBC_TUNABLES: ignoring glibc.malloc.tcache_count, glibc.malloc.mxfast (no swiftmalloc equivalent)\n"},
    {"MALLOC_ARENA_TEST=8", "swiftmalloc: MALLOC_ARENA_TEST=8: no swiftmalloc equivalent; ignored\n"},
    {"GLIBC_TUNABLES=glibc.malloc.arena_max=1",
     "swiftmalloc: GLIBC_TUNABLES: glibc.malloc.arena_max=1: accepted; swiftmalloc has no arenas (one heap for all "
     "threads), and what each thread keeps is bounded by SWIFTMALLOC_CACHE_BUDGET (4M)\n"},
    {"MALLOC_ARENA_MAX=2",
     "swiftmalloc: MALLOC_ARENA_MAX=2: accepted; swiftmalloc has no arenas (one heap for all threads), and what each "
     "thread keeps is bounded by SWIFTMALLOC_CACHE_BUDGET (4M)\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK(run("--busy", 0, VARS(cases[i].var)), "%s: the program failed: %s", cases[i].var, err);
    CHECK(strcmp(err, cases[i].line) == 0, "%s: stderr is\n%swant\n%s", cases[i].var, err, cases[i].line);
  }
}

static void test_verbose(void) {
  CHECK(run("--busy", 0, VARS("SWIFTMALLOC_VERBOSE=yes", "MALLOC_TOP_PAD_=1M", "SWIFTMALLOC_CACHE_BUDGET=8M",
                              "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576")),
        "SWIFTMALLOC_VERBOSE=yes: %s", err);
  char head[128];
  snprintf(head, sizeof head, "swiftmalloc: version %s, pid %d; options in effect:\n", SWIFTMALLOC_VERSION, (int)pid);
  CHECK(strncmp(err, head, strlen(head)) == 0, "verbose output does not start with '%s': %s", head, err);
  CHECK(text_lines(err) == 16, "verbose: want the head line and 15 options, got %d lines: %s", text_lines(err), err);
  static const char *const rows[] = {
    "\nswiftmalloc:   SWIFTMALLOC_MMAP_THRESHOLD=1M (from GLIBC_TUNABLES)\n", "\nswiftmalloc:   SWIFTMALLOC_TRIM_THRESHOLD=128K (default)\n", "\nswiftmalloc:   SWIFTMALLOC_TOP_PAD=1M (from MALLOC_TOP_PAD_)\n",
    "\nswiftmalloc:   SWIFTMALLOC_CACHE_BUDGET=8M (set)\n", "\nswiftmalloc:   SWIFTMALLOC_VERBOSE=1 (set)\n",
    "\nswiftmalloc:   SWIFTMALLOC_STATS_FILE= (default: standard error)\n", "\nswiftmalloc:   MALLOC_CHECK_=0 (default)\n",
    "\nswiftmalloc:   SWIFTMALLOC_PERTURB=0 (default)\n"};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    CHECK(strstr(err, rows[i]) != NULL, "verbose output lacks '%s': %s", rows[i] + 1, err);
}

int main(int argc, char **argv) {
  if (argc > 1) return child(argv[1]);
  t_init("options");
  if (!ours) {
    printf("options: skipped (not swiftmalloc)\n");
    return t_finish();
  }
  test_priority();
  test_trim_and_pad();
  test_perturb_and_check();
  test_booleans();
  test_messages();
  test_verbose();
  return t_finish();
}
