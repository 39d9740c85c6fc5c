/*
 * heap.c: where memory comes from and how it goes back.
 *   - small blocks come from the sbrk heap (the break moves up);
 *   - large blocks are mmapped (outside the [heap] mapping);
 *   - freeing medium blocks trims the top of the sbrk heap (the break moves
 *     down), unless M_TRIM_THRESHOLD forbids it; malloc_trim(0) then does it;
 *   - malloc_trim(0) gives freed small-block memory back (RSS drops);
 *   - SWIFTMALLOC_* environment variables (swiftmalloc only), tested by
 *     re-executing this program.
 */
#include "common.h"


static uintptr_t brk_now(void) { return (uintptr_t)sbrk(0); }

/* The [heap] mapping from /proc/self/maps (0, 0 if there is none). */
static void heap_mapping(uintptr_t *lo, uintptr_t *hi) {
  *lo = *hi = 0;
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strstr(line, "[heap]")) {
      unsigned long a, b;
      if (sscanf(line, "%lx-%lx", &a, &b) == 2) { *lo = a; *hi = b; }
      break;
    }
  }
  fclose(f);
}

static void test_small_blocks_use_sbrk(void) {
  enum { N = 16384 };
  static void *blocks[N];
  uintptr_t before = brk_now();
  for (int i = 0; i < N; i++) {
    blocks[i] = malloc(V(256 + (i % 4) * 16));
    REQUIRE(blocks[i] != NULL, "malloc small");
    memset(blocks[i], 1, 256);
  }
  uintptr_t after = brk_now();
  CHECK(after >= before + 3 * (1 << 20), "4 MiB of small blocks moved the break only from %#lx to %#lx",
        (unsigned long)before, (unsigned long)after);
  uintptr_t lo, hi;
  heap_mapping(&lo, &hi);
  int inside = 0;
  for (int i = 0; i < N; i++) {
    uintptr_t a = opaque_addr(blocks[i]);
    inside += a >= lo && a < hi;
  }
  CHECK(inside >= N * 9 / 10, "only %d of %d small blocks lie in the [heap] mapping %#lx-%#lx", inside, N,
        (unsigned long)lo, (unsigned long)hi);
  for (int i = 0; i < N; i++) free(blocks[i]);
}

static void test_large_blocks_use_mmap(void) {
  uintptr_t brk_before = brk_now();
  /* increasing: glibc raises its mmap threshold to the size of a freed mmap block */
  static const size_t sizes[] = {300 << 10, 1 << 20, 4 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *p = malloc(V(sizes[i]));
    REQUIRE(p != NULL, "malloc(%zu)", sizes[i]);
    memset(p, 2, sizes[i]);
    uintptr_t lo, hi, a = opaque_addr(p), now = brk_now();
    heap_mapping(&lo, &hi);
    CHECK(!(a >= lo && a < hi), "a %zu-byte block at %p lies in the [heap] mapping %#lx-%#lx", sizes[i], p,
          (unsigned long)lo, (unsigned long)hi);
    CHECK(!(a + sizes[i] > lo && a < (now > hi ? now : hi)), "a %zu-byte block at %p overlaps the sbrk heap",
          sizes[i], p);
    CHECK(now < brk_before + sizes[i], "a %zu-byte block moved the break by %ld bytes", sizes[i],
          (long)(now - brk_before));
    free(p);
  }
}

/* count blocks of `size` bytes: returns (break at peak) - (break before) and
 * (break at peak) - (break after freeing all). */
static void alloc_free_medium(size_t size, int count, long *grown, long *shrunk) {
  static void *blocks[256];
  uintptr_t before = brk_now();
  for (int i = 0; i < count; i++) {
    blocks[i] = malloc(V(size));
    REQUIRE(blocks[i] != NULL, "malloc(%zu)", size);
    memset(blocks[i], 3, size);
  }
  uintptr_t peak = brk_now();
  for (int i = 0; i < count; i++) free(blocks[i]);
  uintptr_t after = brk_now();
  *grown = (long)(peak - before);
  *shrunk = (long)(peak - after);
}

static void test_trim_on_free(void) {
  long grown, shrunk;
  /* 100 KiB: below the default 128 KiB mmap threshold */
  alloc_free_medium(100 << 10, 82, &grown, &shrunk);
  CHECK(grown >= (7 << 20), "8 MiB of 100 KiB blocks grew the sbrk heap by %ld only", grown);
  CHECK(shrunk >= grown - (1 << 20), "freeing 8 MiB of 100 KiB blocks: heap grew %ld, shrank only %ld", grown,
        shrunk);
  /* 64 KiB blocks, with the mmap threshold pinned above them */
  CHECK(mallopt(M_MMAP_THRESHOLD, 128 << 10) == 1, "mallopt(M_MMAP_THRESHOLD)");
  alloc_free_medium(64 << 10, 128, &grown, &shrunk);
  CHECK(grown >= (7 << 20), "8 MiB of 64 KiB blocks grew the sbrk heap by %ld only", grown);
  CHECK(shrunk >= grown - (1 << 20), "freeing 8 MiB of 64 KiB blocks: heap grew %ld, shrank only %ld", grown,
        shrunk);

  /* a huge M_TRIM_THRESHOLD keeps the memory; malloc_trim(0) gives it back */
  CHECK(mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1, "mallopt(M_TRIM_THRESHOLD, 256M)");
  alloc_free_medium(64 << 10, 128, &grown, &shrunk);
  uintptr_t kept = brk_now();
  CHECK(shrunk < (1 << 20), "M_TRIM_THRESHOLD 256M: the heap still shrank by %ld on free", shrunk);
  int r = malloc_trim(0);
  uintptr_t trimmed = brk_now();
  CHECK(r == 1, "malloc_trim(0) with 8 MiB free at the top returned %d", r);
  CHECK(kept - trimmed >= (7u << 20), "malloc_trim(0) lowered the break by only %ld", (long)(kept - trimmed));
  CHECK(mallopt(M_TRIM_THRESHOLD, 128 << 10) == 1, "mallopt(M_TRIM_THRESHOLD, 128K)");
}

static void test_malloc_trim_rss(void) {
  enum { N = 50 * 1024, SZ = 1024 };
  static void *blocks[N];
  long r0 = rss_kib();
  for (int i = 0; i < N; i++) {
    blocks[i] = malloc(V(SZ));
    REQUIRE(blocks[i] != NULL, "malloc(1 KiB) #%d", i);
    memset(blocks[i], i, SZ);
  }
  /* one live block after them, so freeing cannot simply cut the top */
  void *keeper = malloc(V(SZ));
  memset(keeper, 1, SZ);
  long r1 = rss_kib();
  CHECK(r1 - r0 >= 45 * 1024, "50 MiB of touched 1 KiB blocks raised RSS by %ld KiB only", r1 - r0);
  for (int i = 0; i < N; i++) free(blocks[i]);
  int r = malloc_trim(0);
  long r2 = rss_kib();
  CHECK(r == 1, "malloc_trim(0) after freeing 50 MiB returned %d", r);
  CHECK(r1 - r2 >= 30 * 1024, "malloc_trim(0): RSS %ld KiB -> %ld KiB, dropped by %ld KiB (want >= 30 MiB)", r1,
        r2, r1 - r2);
  free(keeper);
  /* the memory is still usable after the trim */
  for (int i = 0; i < 1000; i++) {
    blocks[i] = malloc(V(SZ));
    REQUIRE(blocks[i] != NULL, "malloc after trim");
    memset(blocks[i], 7, SZ);
  }
  for (int i = 0; i < 1000; i++) free(blocks[i]);
}

/* ---- SWIFTMALLOC_* environment variables (swiftmalloc only) ------------ */

static pid_t last_child;  /* the pid of run_self's last child */

/* Runs this program with `assignment` added to the environment and argv[1] =
 * mode (common.h's run_self_env); captures its stderr. The wait status. */
static int run_self(const char *assignment, const char *mode, char *err, size_t cap) {
  int st = run_self_env("heap", mode, (const char *const[]){assignment, NULL}, err, cap, &last_child);
  REQUIRE(st != -1, "run_self %s", mode);
  return st;
}

static void test_environment(void) {
  if (!ours) {
    printf("heap: SWIFTMALLOC_* variables: skipped (not swiftmalloc)\n");
    return;
  }
  char err[4096];
  char desc[64];
  int st = run_self("SWIFTMALLOC_MMAP_THRESHOLD=1M", "--child-1m", err, sizeof err);
  describe_status(st, desc, sizeof desc);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
        "SWIFTMALLOC_MMAP_THRESHOLD=1M: a 512 KiB block should not be mmapped, a 2 MiB one should: child %s, stderr: %s",
        desc, err);
  CHECK(err[0] == 0, "SWIFTMALLOC_MMAP_THRESHOLD=1M printed: %s", err);

  st = run_self("SWIFTMALLOC_MMAP_THRESHOLD=banana", "--child-default", err, sizeof err);
  describe_status(st, desc, sizeof desc);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
        "SWIFTMALLOC_MMAP_THRESHOLD=banana: the default threshold (128 KiB) should apply: child %s", desc);
  CHECK(text_lines(err) == 1 && err[strlen(err) - 1] == '\n',
        "SWIFTMALLOC_MMAP_THRESHOLD=banana: want exactly one warning line, got %d lines: %s", text_lines(err), err);
  CHECK(strstr(err, "SWIFTMALLOC_MMAP_THRESHOLD") != NULL, "the warning does not name the variable: %s", err);
  CHECK(strncmp(err, "swiftmalloc: ", 13) == 0, "the warning does not start with 'swiftmalloc: ': %s", err);

  st = run_self("SWIFTMALLOC_MMAP_THRESHOLD=64k", "--child-64k", err, sizeof err);
  describe_status(st, desc, sizeof desc);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SWIFTMALLOC_MMAP_THRESHOLD=64k: child %s, stderr: %s", desc, err);

  st = run_self("SWIFTMALLOC_STATS=1", "--child-default", err, sizeof err);
  describe_status(st, desc, sizeof desc);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SWIFTMALLOC_STATS=1: child %s", desc);
  /* the report names the program, the pid and the version, then glibc's report and ours */
  char head[128];
  snprintf(head, sizeof head, "swiftmalloc report: program heap, pid %d, swiftmalloc ", (int)last_child);
  const char *arena = strchr(err, '\n');
  CHECK(strncmp(err, head, strlen(head)) == 0 && arena && strncmp(arena + 1, "Arena 0:\n", 9) == 0 &&
            strstr(err, "\nswiftmalloc statistics\n") != NULL,
        "SWIFTMALLOC_STATS=1: stderr at exit is not '%s...', glibc's report, then ours: %.120s", head, err);

  st = run_self("SWIFTMALLOC_TRIM_THRESHOLD=12Q", "--child-default", err, sizeof err);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && text_lines(err) == 1 &&
            strstr(err, "SWIFTMALLOC_TRIM_THRESHOLD") != NULL,
        "SWIFTMALLOC_TRIM_THRESHOLD=12Q: want one warning line and a working program, got: %s", err);
}

int main(int argc, char **argv) {
  if (argc > 1) {
    if (strcmp(argv[1], "--child-1m") == 0) return child_threshold(512 << 10, 2 << 20);
    if (strcmp(argv[1], "--child-default") == 0) return child_threshold(100 << 10, 200 << 10);
    if (strcmp(argv[1], "--child-64k") == 0) return child_threshold(60 << 10, 100 << 10);
    return 64;
  }
  t_init("heap");
  /* first: with glibc, a large request is served from free heap chunks when
   * there are any, and the later tests leave some */
  test_large_blocks_use_mmap();
  test_trim_on_free();
  test_small_blocks_use_sbrk();
  test_malloc_trim_rss();
  test_environment();
  return t_finish();
}
