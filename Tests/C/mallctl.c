/*
 * mallctl.c: jemalloc's control interface, as programs built for jemalloc
 * (Redis: FLUSHALL, MEMORY PURGE, INFO memory) call it: "arena.<i>.purge"
 * gives freed memory back at once, the "stats.*" names follow the heap, and
 * names it does not know or wrong sizes get jemalloc's error numbers.
 * With glibc (no mallctl) the test checks nothing but itself.
 */
#include "common.h"

extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));

static size_t stat_of(const char *name) {
  uint64_t epoch = 1;
  size_t len = sizeof epoch;
  CHECK(mallctl("epoch", &epoch, &len, &epoch, len) == 0, "epoch");
  size_t v = 0;
  len = sizeof v;
  CHECK(mallctl(name, &v, &len, NULL, 0) == 0, "%s", name);
  return v;
}

static void test_stats_follow_the_heap(void) {
  size_t before = stat_of("stats.allocated");
  void *p = malloc(V(8 << 20));
  REQUIRE(p != NULL, "malloc(8 MiB)");
  memset(p, 1, 8 << 20);
  sink(p);
  size_t during = stat_of("stats.allocated");
  size_t active = stat_of("stats.active"), resident = stat_of("stats.resident"), mapped = stat_of("stats.mapped");
  free(p);
  size_t after = stat_of("stats.allocated");
  printf("mallctl: stats.allocated %zu -> %zu -> %zu bytes around an 8 MiB block; active %zu, resident %zu, "
         "mapped %zu\n", before, during, after, active, resident, mapped);
  CHECK(during >= before + (8 << 20) && during < before + (9 << 20), "allocated grew by %zd", (ssize_t)(during - before));
  CHECK(after < during - (7 << 20), "allocated after free: %zu", after);
  CHECK(active >= during && mapped >= resident && resident >= (8u << 20), "active %zu resident %zu mapped %zu", active,
        resident, mapped);
}

/* Redis's jemalloc_purge: "arenas.narenas", then "arena.<narenas>.purge". */
static void test_purge(void) {
  enum { N = 300000 };
  static void *v[N];
  long start = rss_kib();
  for (int i = 0; i < N; i++) { v[i] = malloc(V(16 + (size_t)(i % 50) * 16)); memset(v[i], 3, 16); }
  long peak = rss_kib();
  for (int i = 0; i < N; i++) free(v[i]);
  long freed = rss_kib();
  unsigned narenas = 0;
  size_t len = sizeof narenas;
  CHECK(mallctl("arenas.narenas", &narenas, &len, NULL, 0) == 0 && narenas >= 1, "arenas.narenas %u", narenas);
  char name[32];
  snprintf(name, sizeof name, "arena.%u.purge", narenas);
  CHECK(mallctl(name, NULL, NULL, NULL, 0) == 0, "%s", name);
  long purged = rss_kib();
  printf("mallctl: RSS start %ld KiB, peak %ld, after free %ld, after %s %ld\n", start, peak, freed, name, purged);
  CHECK(purged - start <= (peak - start) / 10 + 1024, "after the purge %ld KiB of %ld kept", purged - start,
        peak - start);
  CHECK(mallctl("arena.4096.decay", NULL, NULL, NULL, 0) == 0, "arena.4096.decay");
  CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
}

static void test_errors(void) {
  size_t v = 0, len = sizeof v;
  CHECK(mallctl("opt.narenas", &v, &len, NULL, 0) == ENOENT, "unknown name");
  CHECK(mallctl("arena.x.purge", NULL, NULL, NULL, 0) == ENOENT, "arena without a number");
  CHECK(mallctl("stats.nonsense", &v, &len, NULL, 0) == ENOENT, "unknown stat");
  len = 4;
  v = 0;
  CHECK(mallctl("stats.allocated", &v, &len, NULL, 0) == EINVAL && len == 4 && v != 0,
        "wrong old length: EINVAL, the first 4 bytes copied (len %zu, v %zu)", len, v);
  CHECK(mallctl("stats.allocated", &v, NULL, NULL, 0) == 0, "oldp without oldlenp reads nothing");
  CHECK(mallctl("stats.allocated", NULL, NULL, NULL, 8) == EPERM, "newlen given to a read-only name");
  CHECK(mallctl("arena.0.purge", NULL, &len, NULL, 0) == EPERM, "oldlenp given to a purge");
  len = sizeof v;
  CHECK(mallctl("stats.allocated", &v, &len, &v, sizeof v) == EPERM, "write to a read-only stat");
  uint64_t e = 0;
  CHECK(mallctl("epoch", NULL, NULL, &e, 2) == EINVAL, "epoch with a wrong new length");
  CHECK(mallctl("arena.0.purge", &v, &len, NULL, 0) == EPERM, "purge with a value to read");
}

int main(void) {
  t_init("mallctl");
  if (!mallctl) {
    CHECK(!ours, "swiftmalloc exports no mallctl");
    return t_finish();
  }
  test_stats_follow_the_heap();
  test_purge();
  test_errors();
  return t_finish();
}
