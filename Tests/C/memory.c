/*
 * memory.c: memory that follows the live data (issue #12's rules), each
 * knob shown by its effect.
 *
 * - Idle threads: 300 threads each allocate and free 64 blocks in each of 24
 *   sizes, then wait. Bytes in use (mallinfo2().uordblks, which counts the
 *   blocks thread caches keep) grow by at most the budget's share per thread
 *   (4 MiB / threads, at least 16 KiB) plus a little, not a megabyte each;
 *   and they come back when the threads exit.
 * - Idle threads that freed other threads' blocks: 300 threads each free a
 *   neighbour's blocks, just under 4 KiB of each of 16 classes (under a
 *   batch each, so no list fills), then wait. The blocks wait in their outgoing lists,
 *   which only their thread may send: all of them together stay under
 *   8 KiB (before, each class's list could hold up to a batch: 61 KiB).
 * - SWM_M_CACHE_BUDGET: with a budget of 0 (every share at its 16 KiB floor)
 *   a thread that freed 2 MiB of small blocks keeps at most 16 KiB of them.
 * - SWM_M_DIRTY_LIMIT and SWM_M_DECAY_MS: after freeing ~100 MB of small
 *   blocks, RSS keeps at most the dirty limit at once, and with a decay time
 *   of 200 ms goes down to a few MiB while the program keeps allocating.
 * - Freed mmap blocks no request can reach: the free of an 8 MiB mmap block
 *   raises the mmap threshold past it (glibc's dynamic threshold), so it is
 *   unmapped at once, as glibc does, instead of being kept for reuse; and a
 *   kept block goes back as soon as mallopt raises the threshold past it
 *   (the mallopt call itself unmaps it).
 * glibc has none of these rules: in glibc mode only the bookkeeping runs.
 */
#include "common.h"

#include <pthread.h>

#include "swiftmalloc.h"

enum { THREADS = 300, CLASSES = 24, PER_CLASS = 64 };

static pthread_barrier_t start, idle, done;

static size_t class_size(int k) {
  size_t s = (size_t)16 << (k / 2);
  return k & 1 ? s + s / 2 : s;
}

static void *idle_thread(void *arg) {
  (void)arg;
  void *v[PER_CLASS];
  /* every thread has its cache before any works, so each works within the
   * share of THREADS + 1 caches (an idle thread keeps what its share was at
   * its last slow path: with caches made one by one as threads start work,
   * the first ones would keep up to 4 MiB / k each) */
  void *first = malloc(V(16));
  sink(first);
  free(first);
  pthread_barrier_wait(&start);
  for (int k = 0; k < CLASSES; k++) {
    for (int i = 0; i < PER_CLASS; i++) { v[i] = malloc(V(class_size(k))); memset(v[i], 1, 16); }
    for (int i = 0; i < PER_CLASS; i++) free(v[i]);
  }
  pthread_barrier_wait(&idle);
  pthread_barrier_wait(&done);
  return NULL;
}

/* Starts THREADS threads of `fn` (argument: the thread's index, 64 KiB
 * stacks) that meet the caller at the barriers start, idle and done. */
static void start_threads(pthread_t *t, void *(*fn)(void *)) {
  pthread_barrier_init(&start, NULL, THREADS + 1);
  pthread_barrier_init(&idle, NULL, THREADS + 1);
  pthread_barrier_init(&done, NULL, THREADS + 1);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 << 10);
  for (int i = 0; i < THREADS; i++) REQUIRE(pthread_create(&t[i], &attr, fn, (void *)(intptr_t)i) == 0, "thread %d", i);
  pthread_attr_destroy(&attr);
}

/* Joins what start_threads started (after the barrier `done`). */
static void join_threads(pthread_t *t) {
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&start);
  pthread_barrier_destroy(&idle);
  pthread_barrier_destroy(&done);
}

static void test_idle_threads(void) {
  size_t before = mallinfo2().uordblks;
  static pthread_t t[THREADS];
  start_threads(t, idle_thread);
  void *mine = malloc(V(16));  /* a cache for this thread too: THREADS + 1 share the budget */
  sink(mine);
  free(mine);
  pthread_barrier_wait(&start);
  pthread_barrier_wait(&idle);
  size_t during = mallinfo2().uordblks;
  pthread_barrier_wait(&done);
  join_threads(t);
  malloc_trim(0);  /* the main thread's own cache (pthread_create allocates) */
  size_t after = mallinfo2().uordblks;
  long per_thread = ((long)during - (long)before) / THREADS;
  printf("memory: idle threads hold %ld bytes each in use (thread caches included); %ld more in use after they exit\n",
         per_thread, (long)after - (long)before);
  if (!ours) return;
  /* share = max(16 KiB, 4 MiB / 300) = 16 KiB; the cache itself and glibc's
   * per-thread allocations add a few KiB */
  CHECK(per_thread <= 32 << 10, "%ld bytes in use per idle thread (at most the 16 KiB share plus a little)", per_thread);
  /* glibc keeps each exited thread's DTV (about 280 bytes, malloc'd) with
   * its cached stack: that much stays in use by right */
  CHECK((long)after - (long)before <= (64 << 10) + THREADS * 512, "%ld bytes still in use after every thread exited",
        (long)after - (long)before);
}

/* test_idle_remote: each thread allocates remote_count(k) blocks of class k
 * for its neighbour, which frees them and goes idle. */
enum { REMOTE_CLASSES = 16 };  /* 16 B .. 3 KiB */
static void **remote_blocks;
static int remote_per_thread;

static size_t remote_size(int k) { return class_size(k); }
static int remote_count(int k) {
  size_t s = remote_size(k);
  int n = (int)((4096 + s - 1) / s) - 1;  /* under 4 KiB and under a batch of each class */
  return n > 63 ? 63 : n;
}

static void *remote_thread(void *arg) {
  int me = (int)(intptr_t)arg, j = 0;
  void **mine = remote_blocks + (size_t)me * remote_per_thread;
  for (int k = 0; k < REMOTE_CLASSES; k++)
    for (int i = 0; i < remote_count(k); i++) { mine[j] = malloc(V(remote_size(k))); memset(mine[j], 2, 16); j++; }
  pthread_barrier_wait(&start);
  void **theirs = remote_blocks + (size_t)((me + 1) % THREADS) * remote_per_thread;
  for (int i = 0; i < remote_per_thread; i++) free(theirs[i]);
  pthread_barrier_wait(&idle);
  pthread_barrier_wait(&done);
  return NULL;
}

static void test_idle_remote(void) {
  for (int k = 0; k < REMOTE_CLASSES; k++) remote_per_thread += remote_count(k);
  remote_blocks = calloc((size_t)THREADS * remote_per_thread, sizeof(void *));
  REQUIRE(remote_blocks != NULL, "calloc");
  static pthread_t t[THREADS];
  size_t before = mallinfo2().uordblks;
  start_threads(t, remote_thread);
  pthread_barrier_wait(&start);
  pthread_barrier_wait(&idle);
  long per_thread = ((long)mallinfo2().uordblks - (long)before) / THREADS;
  pthread_barrier_wait(&done);
  join_threads(t);
  free(remote_blocks);
  printf("memory: idle threads that freed their neighbour's blocks hold %ld bytes each in use\n", per_thread);
  if (!ours) return;
  /* the 16 KiB share, outgoing lists under 8 KiB, the cache and glibc's own */
  CHECK(per_thread <= 32 << 10, "%ld bytes in use per idle thread after remote frees", per_thread);
}

static void *budget_thread(void *arg) {
  long *kept = arg;
  enum { N = 4096 };
  static void *v[N];
  free(malloc(V(512)));
  size_t start = mallinfo2().uordblks;
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < N; i++) v[i] = malloc(V(512));
    for (int i = 0; i < N; i++) free(v[i]);
  }
  /* in use now, beyond the start: what this thread's cache kept */
  *kept = (long)mallinfo2().uordblks - (long)start;
  return NULL;
}

static void test_budget_knob(void) {
  if (!ours) return;
  CHECK(mallopt(SWM_M_CACHE_BUDGET, 0) == 1, "mallopt(SWM_M_CACHE_BUDGET, 0) refused");
  long kept = 0;
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, budget_thread, &kept) == 0, "thread");
  pthread_join(t, NULL);
  printf("memory: with a budget of 0 a thread that freed 2 MiB kept %ld bytes\n", kept);
  CHECK(kept <= 20 << 10, "a thread kept %ld bytes in its cache with the budget at 0 (share floor 16 KiB)", kept);
  CHECK(mallopt(SWM_M_CACHE_BUDGET, 4 << 20) == 1, "mallopt(SWM_M_CACHE_BUDGET, 4 MiB) refused");
  CHECK(mallopt(SWM_M_CACHE_BUDGET, -1) == 0, "a negative budget was taken");
}

static void test_dirty_limit_and_decay(void) {
  enum { N = 200000 };
  static void *v[N];
  if (ours) {
    CHECK(mallopt(SWM_M_DIRTY_LIMIT, 8 << 20) == 1, "mallopt(SWM_M_DIRTY_LIMIT) refused");
    CHECK(mallopt(SWM_M_DECAY_MS, 200) == 1, "mallopt(SWM_M_DECAY_MS) refused");
  }
  long start = rss_kib();
  for (int i = 0; i < N; i++) { size_t s = 16 + (size_t)(i * 7919) % 1000; v[i] = malloc(V(s)); memset(v[i], 7, s); }
  long peak = rss_kib();
  for (int i = 0; i < N; i++) free(v[i]);
  long freed = rss_kib();
  /* keep allocating, in sizes that miss the thread cache now and then */
  for (int round = 0; round < 8; round++) {
    usleep(100 * 1000);
    for (int i = 0; i < 2000; i++) v[i] = malloc(V(16 + (size_t)(i * 13) % 4000));
    for (int i = 0; i < 2000; i++) free(v[i]);
  }
  long later = rss_kib();
  printf("memory: RSS start %ld KiB, peak %ld KiB, right after free %ld KiB, after 0.8 s of activity %ld KiB\n", start,
         peak, freed, later);
  if (!ours) return;
  long added = peak - start;
  CHECK(freed - start <= added / 4 + (16 << 10), "right after free: %ld KiB of %ld kept (dirty limit 8 MiB)",
        freed - start, added);
  CHECK(later - start <= added / 10 + (4 << 10), "after the decay time: %ld KiB of %ld kept", later - start, added);
  mallopt(SWM_M_DECAY_MS, 5000);
  mallopt(SWM_M_DIRTY_LIMIT, 32 << 20);
}

/* The child of test_background_purge: frees 6 MiB of page runs (below the
 * dirty limit, so they stay resident), sleeps 1 s without calling the
 * allocator, prints how much RSS went down meanwhile. */
static int purge_child(void) {
  enum { N = 60 };
  static void *v[N];
  for (int i = 0; i < N; i++) { v[i] = malloc(V(100 << 10)); memset(v[i], 3, 100 << 10); }
  for (int i = 0; i < N; i++) free(v[i]);
  long before = rss_kib();
  sleep(1);
  fprintf(stderr, "%ld\n", before - rss_kib());
  return 0;
}

/* KiB of RSS the purge child gave back while idle, with `assignment` set
 * (no trimming of the sbrk top: the pages stay free in the heap). */
static long purge_drop(const char *assignment) {
  char out[64];
  const char *vars[] = {"SWIFTMALLOC_DECAY_MS=200", "SWIFTMALLOC_TRIM_THRESHOLD=1G", assignment, NULL};
  int st = run_self_env("memory", "--purge-child", vars, out, sizeof out, NULL);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && out[0], "purge child failed (status %d)", st);
  return atol(out);
}

/* SWIFTMALLOC_BACKGROUND_PURGE=1: an idle process gives its free pages back
 * once the decay time has passed; without it they stay until the next call. */
static void test_background_purge(void) {
  if (!ours) return;
  long with = purge_drop("SWIFTMALLOC_BACKGROUND_PURGE=1");
  long without = purge_drop(NULL);
  printf("memory: idle for 1 s after freeing 6 MiB: RSS down %ld KiB with the background purge, %ld KiB without\n",
         with, without);
  CHECK(with >= 4 << 10, "the background purge gave back only %ld KiB of 6 MiB", with);
  CHECK(without < 2 << 10, "without the purge %ld KiB went back while idle (the check above shows nothing)", without);
}

/* A freed mmap block is kept and handed out again, cut to a smaller size:
 * the statistics still count exactly the blocks in use. */
static void test_kept_large_blocks(void) {
  void *a = malloc(V(40 << 20));
  REQUIRE(a != NULL, "malloc(40 MiB)");
  free(a);
  void *b = malloc(V(35 << 20));
  REQUIRE(b != NULL, "malloc(35 MiB)");
  struct mallinfo2 m = mallinfo2();
  if (!ours) { free(b); return; }  /* glibc may serve it from its heap */
  CHECK(m.hblks == 1 && m.hblkhd >= (35u << 20) && m.hblkhd < (36u << 20), "one 35 MiB block: hblks %zu hblkhd %zu",
        m.hblks, m.hblkhd);
  free(b);
  m = mallinfo2();
  CHECK(m.hblks == 0 && m.hblkhd == 0, "none after free: hblks %zu hblkhd %zu", m.hblks, m.hblkhd);
}

/* Runs first: the dynamic threshold only rises, and an earlier test's
 * frees could have raised it past 8 MiB (the block would come from the heap). */
static void test_unreachable_block_unmapped(void) {
  size_t n = V(8 << 20);
  long start = rss_kib();
  char *b = malloc(n);
  REQUIRE(b != NULL, "malloc(8 MiB)");
  memset(b, 1, n);
  sink(b);  /* the writes stay: free does not let the compiler drop them */
  long peak = rss_kib();
  free(b);
  long after = rss_kib();
  printf("memory: an 8 MiB mmap block: RSS +%ld KiB, then -%ld KiB at its free\n", peak - start, peak - after);
  CHECK(peak - after >= 7 << 10, "the free of an 8 MiB mmap block that raised the threshold past it gave back %ld KiB",
        peak - after);
}

/* Runs last: the threshold stays pinned. */
static void test_kept_block_unmapped_when_unreachable(void) {
  REQUIRE(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1, "mallopt(M_MMAP_THRESHOLD, 1 MiB)");
  size_t n = V(4 << 20);
  char *c = malloc(n);
  REQUIRE(c != NULL, "malloc(4 MiB)");
  memset(c, 1, n);
  sink(c);
  long peak = rss_kib();
  free(c);
  long kept = peak - rss_kib();
  /* glibc may serve it from its heap; secure mode keeps no mmap block */
  if (ours && !secure) CHECK(kept < 1 << 10, "a 4 MiB block above a pinned threshold was not kept (%ld KiB went back)", kept);
  REQUIRE(mallopt(M_MMAP_THRESHOLD, 16 << 20) == 1, "mallopt(M_MMAP_THRESHOLD, 16 MiB)");
  long back = peak - rss_kib();  /* mallopt itself drops what no request can reach */
  printf("memory: a kept 4 MiB block: -%ld KiB at its free, -%ld KiB once the threshold rose past it\n", kept, back);
  if (ours) CHECK(back >= 3 << 10, "a kept 4 MiB block stayed resident (%ld KiB back) after the threshold rose to 16 MiB", back);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--purge-child") == 0) return purge_child();
  t_init("memory");
  test_unreachable_block_unmapped();
  test_idle_threads();
  test_idle_remote();
  test_budget_knob();
  test_dirty_limit_and_decay();
  test_background_purge();
  test_kept_large_blocks();
  test_kept_block_unmapped_when_unreachable();
  return t_finish();
}
