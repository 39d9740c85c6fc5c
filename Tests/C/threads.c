/*
 * threads.c: the allocator under threads.
 *   1. thread churn: 10,000 short-lived threads (batches of 8), each
 *      allocating and freeing a few hundred blocks; RSS stays bounded and
 *      (swiftmalloc) the thread caches are given back at thread exit;
 *   2. producers/consumers: 4 threads allocate random-size blocks (8 B to
 *      64 KiB) filled with a pattern derived from the pointer and the thread,
 *      and hand half of them through mutex-protected queues to the next
 *      thread, which checks the pattern and frees them;
 *   3. a thread whose pthread key destructor (a key of the test's own)
 *      allocates after the allocator's own thread-exit destructor ran, and
 *      frees in a later destructor round;
 *   4. (swiftmalloc) no passive false sharing: small blocks allocated in one
 *      burst by the main thread and freed by workers are not handed back to
 *      those workers, whose new blocks then never share a cache line with a
 *      block another thread holds.
 */
#include "common.h"

#include <pthread.h>


/* ---- 1. thread churn ---------------------------------------------------- */

enum { CHURN_THREADS = 10000, CHURN_BATCH = 8, CHURN_BLOCKS = 300 };

static void *churn_leftover[CHURN_THREADS];
static int churn_errors;

static void *churn_thread(void *arg) {
  long id = (long)arg;
  uint64_t rng = 0x1234567ull + (uint64_t)id * 7919;
  void *blocks[CHURN_BLOCKS];
  size_t sizes[CHURN_BLOCKS];
  for (int i = 0; i < CHURN_BLOCKS; i++) {
    uint64_t r = rng_next(&rng);
    sizes[i] = (r & 7) == 0 ? 2048 + r % 30000 : 16 + r % 1024;
    blocks[i] = malloc(V(sizes[i]));
    if (!blocks[i]) { __atomic_fetch_add(&churn_errors, 1, __ATOMIC_RELAXED); return NULL; }
    fill_fast(blocks[i], sizes[i], (uint64_t)(uintptr_t)blocks[i] ^ (uint64_t)id);
  }
  for (int i = 0; i < CHURN_BLOCKS; i++) {
    if (verify_fast(blocks[i], sizes[i], (uint64_t)(uintptr_t)blocks[i] ^ (uint64_t)id) >= 0)
      __atomic_fetch_add(&churn_errors, 1, __ATOMIC_RELAXED);
    if (i != 0) free(blocks[i]);
  }
  /* one block outlives its thread, freed later by the main thread */
  churn_leftover[id] = blocks[0];
  return NULL;
}

static void test_thread_churn(void) {
  long base = rss_kib();
  for (long t = 0; t < CHURN_THREADS; t += CHURN_BATCH) {
    pthread_t th[CHURN_BATCH];
    int n = 0;
    for (long k = t; k < t + CHURN_BATCH && k < CHURN_THREADS; k++) {
      int e = pthread_create(&th[n], NULL, churn_thread, (void *)k);
      REQUIRE(e == 0, "pthread_create #%ld: %s", k, strerror(e));
      n++;
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  }
  CHECK(churn_errors == 0, "thread churn: %d blocks failed (NULL or damaged)", churn_errors);
  long caches = ours ? swm_thread_caches() : -1;
  long rss = rss_kib();
  for (int i = 0; i < CHURN_THREADS; i++) free(churn_leftover[i]);
  printf("threads: churn of %d threads: RSS %ld KiB -> %ld KiB\n", CHURN_THREADS, base, rss);
  CHECK(rss < 64 * 1024, "after %d short-lived threads RSS is %ld KiB (limit 64 MiB)", CHURN_THREADS, rss);
  if (ours) {
    /* only the main thread's cache may remain (plus one being torn down) */
    CHECK(caches >= 0 && caches <= 2, "%ld thread caches alive after all threads exited", caches);
  }
}

/* ---- 2. producers and consumers ------------------------------------------ */

enum { WORKERS = 4, ITERATIONS = 60000, QCAP = 1024, SLOTS = 128 };

struct item { void *p; size_t n; int owner; };
struct queue {
  pthread_mutex_t lock;
  struct item items[QCAP];
  int head, count;
};

static struct queue queues[WORKERS];
static int producers_left;
static long checked[WORKERS], damaged[WORKERS], nulls[WORKERS];

static uint64_t seed_of(void *p, int owner) { return (uint64_t)(uintptr_t)p * 31 + (uint64_t)owner * 0x100000001b3ull; }

static void check_and_free(struct item it, int me) {
  long bad = verify_fast(it.p, it.n, seed_of(it.p, it.owner));
  checked[me]++;
  if (bad >= 0) {
    damaged[me]++;
    if (damaged[me] < 5)
      fprintf(stderr, "threads: block %p (%zu bytes, from thread %d) damaged at offset %ld (seen by %d)\n", it.p,
              it.n, it.owner, bad, me);
  }
  free(it.p);
}

static int queue_push(struct queue *q, struct item it) {
  int ok = 0;
  pthread_mutex_lock(&q->lock);
  if (q->count < QCAP) {
    q->items[(q->head + q->count) % QCAP] = it;
    q->count++;
    ok = 1;
  }
  pthread_mutex_unlock(&q->lock);
  return ok;
}

static int queue_pop(struct queue *q, struct item *out, int max) {
  int n = 0;
  pthread_mutex_lock(&q->lock);
  while (n < max && q->count > 0) {
    out[n++] = q->items[q->head];
    q->head = (q->head + 1) % QCAP;
    q->count--;
  }
  pthread_mutex_unlock(&q->lock);
  return n;
}

static size_t random_size(uint64_t *rng) {
  uint64_t r = rng_next(rng);
  /* log-uniform from 8 B to 64 KiB: mostly small, some medium */
  unsigned shift = 3 + (unsigned)(r % 14); /* 8 .. 64K */
  size_t hi = (size_t)1 << shift;
  size_t n = hi / 2 + (size_t)((r >> 8) % (hi / 2 + 1));
  if (n < 8) n = 8;
  if (n > 65536) n = 65536;
  return n;
}

static void *worker(void *arg) {
  int me = (int)(long)arg;
  uint64_t rng = 0x9876543210ull + (uint64_t)me;
  struct item mine[SLOTS] = {{0}};
  struct item batch[64];
  for (int it = 0; it < ITERATIONS; it++) {
    size_t n = random_size(&rng);
    void *p = malloc(V(n));
    if (!p) { nulls[me]++; continue; }
    fill_fast(p, n, seed_of(p, me));
    struct item x = {p, n, me};
    if (rng_next(&rng) & 1) {
      if (!queue_push(&queues[(me + 1) % WORKERS], x)) check_and_free(x, me);
    } else {
      int slot = (int)(rng_next(&rng) % SLOTS);
      if (mine[slot].p) check_and_free(mine[slot], me);
      mine[slot] = x;
    }
    if ((it & 15) == 0) {
      int got = queue_pop(&queues[me], batch, 64);
      for (int i = 0; i < got; i++) check_and_free(batch[i], me);
    }
  }
  for (int s = 0; s < SLOTS; s++)
    if (mine[s].p) check_and_free(mine[s], me);
  __atomic_fetch_sub(&producers_left, 1, __ATOMIC_SEQ_CST);
  /* drain until every producer is done and the queue is empty */
  for (;;) {
    int done = __atomic_load_n(&producers_left, __ATOMIC_SEQ_CST) == 0;
    int got = queue_pop(&queues[me], batch, 64);
    for (int i = 0; i < got; i++) check_and_free(batch[i], me);
    if (done && got == 0) break;
    if (got == 0) sched_yield();
  }
  return NULL;
}

static void test_producers_consumers(void) {
  producers_left = WORKERS;
  for (int i = 0; i < WORKERS; i++) pthread_mutex_init(&queues[i].lock, NULL);
  pthread_t th[WORKERS];
  for (long i = 0; i < WORKERS; i++) REQUIRE(pthread_create(&th[i], NULL, worker, (void *)i) == 0, "pthread_create");
  for (int i = 0; i < WORKERS; i++) pthread_join(th[i], NULL);
  long total = 0, bad = 0, nul = 0;
  for (int i = 0; i < WORKERS; i++) {
    total += checked[i];
    bad += damaged[i];
    nul += nulls[i];
    CHECK(queues[i].count == 0, "queue %d still holds %d blocks", i, queues[i].count);
  }
  printf("threads: producers/consumers: %ld blocks checked\n", total);
  CHECK(nul == 0, "%ld mallocs returned NULL", nul);
  CHECK(bad == 0, "%ld of %ld blocks had a damaged pattern when freed", bad, total);
  CHECK(total == (long)WORKERS * ITERATIONS - nul, "checked %ld blocks, allocated %ld", total,
        (long)WORKERS * ITERATIONS - nul);
}

/* ---- 3. allocation in a pthread key destructor ----------------------------- */

static pthread_key_t test_key;
static int destructor_rounds_seen[4];
static int destructor_errors;

struct dstate {
  int round;
  int allocate_in_body;
  void *blocks[6];
  size_t sizes[6];
};

static void test_destructor(void *arg) {
  struct dstate *d = arg;
  static const size_t sizes[6] = {24, 700, 5000, 40000, 100 << 10, 1 << 20};
  d->round++;
  __atomic_fetch_add(&destructor_rounds_seen[d->round < 4 ? d->round : 3], 1, __ATOMIC_RELAXED);
  if (d->round == 1) {
    /* allocate: keep these for the next round */
    for (int i = 0; i < 6; i++) {
      d->sizes[i] = sizes[i];
      d->blocks[i] = malloc(V(sizes[i]));
      if (!d->blocks[i]) { __atomic_fetch_add(&destructor_errors, 1, __ATOMIC_RELAXED); continue; }
      fill_fast(d->blocks[i], sizes[i], (uint64_t)(uintptr_t)d->blocks[i]);
    }
    pthread_setspecific(test_key, d); /* ask for another round */
    return;
  }
  /* round 2: the allocator's own destructor has run by now */
  for (int i = 0; i < 6; i++) {
    if (!d->blocks[i]) continue;
    if (verify_fast(d->blocks[i], d->sizes[i], (uint64_t)(uintptr_t)d->blocks[i]) >= 0)
      __atomic_fetch_add(&destructor_errors, 1, __ATOMIC_RELAXED);
    free(d->blocks[i]);
  }
  for (int k = 0; k < 200; k++) {
    size_t n = 16 + (size_t)k * 37;
    void *p = malloc(V(n));
    if (!p) { __atomic_fetch_add(&destructor_errors, 1, __ATOMIC_RELAXED); continue; }
    memset(p, k, n);
    void *q = realloc(p, V(n * 2));
    if (!q) { free(p); __atomic_fetch_add(&destructor_errors, 1, __ATOMIC_RELAXED); continue; }
    free(q);
  }
  void *c = calloc(10, 10);
  free(c);
  free(d);
}

static void *destructor_thread(void *arg) {
  /* the state block itself is allocated before the thread's first malloc
   * when allocate_in_body is 0: the thread's first allocation then happens
   * inside the destructor */
  struct dstate *d = arg;
  if (d->allocate_in_body) {
    for (int i = 0; i < 100; i++) {
      void *p = malloc(V(32 + i));
      memset(p, 1, 32 + i);
      free(p);
    }
  }
  pthread_setspecific(test_key, d);
  return NULL;
}

static void test_key_destructor(void) {
  REQUIRE(pthread_key_create(&test_key, test_destructor) == 0, "pthread_key_create");
  enum { N = 64 };
  for (int round = 0; round < N; round += 4) {
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
      struct dstate *d = calloc(1, sizeof *d);
      REQUIRE(d != NULL, "calloc");
      d->allocate_in_body = (round + i) % 2;
      REQUIRE(pthread_create(&th[i], NULL, destructor_thread, d) == 0, "pthread_create");
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  }
  CHECK(destructor_errors == 0, "%d failures inside key destructors", destructor_errors);
  CHECK(destructor_rounds_seen[1] == N && destructor_rounds_seen[2] == N,
        "destructor rounds: %d first, %d second (want %d each)", destructor_rounds_seen[1], destructor_rounds_seen[2], N);
  if (ours) {
    long caches = swm_thread_caches();
    CHECK(caches >= 0 && caches <= 2, "%ld thread caches alive after the destructor threads exited", caches);
  }
  /* the heap is still sound */
  for (int i = 0; i < 1000; i++) {
    void *p = malloc(V(16 + i * 13));
    REQUIRE(p != NULL, "malloc");
    memset(p, 1, 16 + i * 13);
    free(p);
  }
}

/* ---- 4. passive false sharing ------------------------------------------- */

enum { FS_WORKERS = 4, FS_ALLOCS = 64 };
static char *fs_burst[FS_WORKERS];
static uintptr_t fs_got[FS_WORKERS][FS_ALLOCS];

static pthread_barrier_t fs_barrier;

static void *fs_worker(void *arg) {
  long w = (long)arg;
  free(fs_burst[w]);
  pthread_barrier_wait(&fs_barrier); /* every burst block is freed */
  void *keep[FS_ALLOCS];
  for (int i = 0; i < FS_ALLOCS; i++) {
    keep[i] = malloc(V(8));
    fs_got[w][i] = opaque_addr(keep[i]);
  }
  pthread_barrier_wait(&fs_barrier); /* all are running, all hold their blocks */
  for (int i = 0; i < FS_ALLOCS; i++) free(keep[i]);
  return NULL;
}

static void test_passive_false_sharing(void) {
  if (!ours) return; /* glibc's tcache hands the freed block straight back */
  /* secure mode has no thread caches and no span owners: every thread takes
   * blocks from the same central lists (as hardened_malloc's threads share
   * an arena's slabs) */
  if (secure) return;
  for (int w = 0; w < FS_WORKERS; w++) {
    fs_burst[w] = malloc(V(8));
    REQUIRE(fs_burst[w] != NULL, "malloc(8)");
  }
  uintptr_t lo = opaque_addr(fs_burst[0]) & ~(uintptr_t)63, hi = lo;
  for (int w = 0; w < FS_WORKERS; w++) {
    uintptr_t line = opaque_addr(fs_burst[w]) & ~(uintptr_t)63;
    if (line < lo) lo = line;
    if (line > hi) hi = line;
  }
  /* the workers run at once, as the threads of a server would */
  pthread_t t[FS_WORKERS];
  REQUIRE(pthread_barrier_init(&fs_barrier, NULL, FS_WORKERS) == 0, "pthread_barrier_init");
  for (long w = 0; w < FS_WORKERS; w++)
    REQUIRE(pthread_create(&t[w], NULL, fs_worker, (void *)w) == 0, "pthread_create");
  for (int w = 0; w < FS_WORKERS; w++) pthread_join(t[w], NULL);
  pthread_barrier_destroy(&fs_barrier);
  int shared = 0;
  for (int w = 0; w < FS_WORKERS; w++)
    for (int i = 0; i < FS_ALLOCS; i++) {
      uintptr_t line = fs_got[w][i] & ~(uintptr_t)63;
      shared += line >= lo && line <= hi;
    }
  CHECK(shared == 0, "%d blocks the workers allocated lie on the cache lines of the main thread's burst", shared);
}

int main(void) {
  t_init("threads");
  test_passive_false_sharing();
  test_thread_churn();
  test_producers_consumers();
  test_key_destructor();
  return t_finish();
}
