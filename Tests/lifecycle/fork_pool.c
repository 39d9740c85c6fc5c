/*
 * fork_pool.c: fork while other threads are inside pool calls.
 * Kind: every lock of the allocator, the pools' included, must be in a
 * usable state in the child (glibc's equivalent: all arena locks are taken
 * in fork's prepare step and reinitialised in the child, malloc/arena.c).
 * Two threads allocate and free, in bursts, objects of a slab cache
 * (swm_cache_*) and elements of a memory reserve (swm_mempool_*) while the
 * main thread forks up to 200 times (it stops after 2 bad children). Each
 * child allocates and frees from the same cache (objects still constructed)
 * and reserve, and mallocs.
 * Right answer: every child exits 0 (no glibc equivalent: the pools are
 * swiftmalloc's own API; the glibc mode is skipped).
 */
#include "lc.h"

#include <pthread.h>

enum { FORKS = 200, MAGIC = 0x5a17ab1e };

static swm_cache_t *(*cache_create)(const char *, size_t, size_t, void (*)(void *), void (*)(void *));
static void *(*cache_alloc)(swm_cache_t *);
static void (*cache_free)(swm_cache_t *, void *);
static swm_mempool_t *(*mempool_create)(int, size_t);
static void *(*mempool_alloc)(swm_mempool_t *, int);
static void (*mempool_free)(swm_mempool_t *, void *);

static swm_cache_t *cache;
static swm_mempool_t *reserve;
static volatile int stop;
static long errors;

static void construct(void *obj) { *(int *)obj = MAGIC; }

/* Returns the number of problems: NULL results or unconstructed objects. */
static long use_pools(int rounds, int burst) {
  long bad = 0;
  void *held[32];
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < burst; i++) {
      held[i] = cache_alloc(cache);
      if (!held[i] || *(int *)held[i] != MAGIC) bad++;
    }
    for (int i = 0; i < burst; i++) if (held[i]) cache_free(cache, held[i]);
    for (int i = 0; i < burst; i++) {
      held[i] = mempool_alloc(reserve, 0);
      if (!held[i]) bad++;
      else memset(held[i], r, 256);
    }
    for (int i = 0; i < burst; i++) if (held[i]) mempool_free(reserve, held[i]);
  }
  return bad;
}

static void *pool_thread(void *arg) {
  while (!stop) __atomic_fetch_add(&errors, use_pools(10, (int)(long)arg), __ATOMIC_RELAXED);
  return NULL;
}

int main(void) {
  lc_init("fork_pool", 30);
  cache_create = LC_SWM(swm_cache_create);
  cache_alloc = LC_SWM(swm_cache_alloc);
  cache_free = LC_SWM(swm_cache_free);
  mempool_create = LC_SWM(swm_mempool_create_kmalloc);
  mempool_alloc = LC_SWM(swm_mempool_alloc);
  mempool_free = LC_SWM(swm_mempool_free);
  REQUIRE(cache_create && cache_alloc && cache_free && mempool_create && mempool_alloc && mempool_free,
          "the swm_cache_* / swm_mempool_* functions are not in the process");
  cache = cache_create("lc-fork-obj", 200, 16, construct, NULL);
  reserve = mempool_create(8, 512);
  REQUIRE(cache && reserve, "cannot create the cache or the reserve");

  pthread_t t[2];
  pthread_create(&t[0], NULL, pool_thread, (void *)32L);
  pthread_create(&t[1], NULL, pool_thread, (void *)13L);
  int bad_children = 0;
  for (int i = 0; i < FORKS && bad_children < 2; i++) {
    usleep(500);
    pid_t pid = fork();
    if (pid == 0) {
      void *p = malloc(1000);
      _exit(p && use_pools(20, 32) == 0 ? 0 : 1);
    }
    REQUIRE(pid > 0, "fork: %s", strerror(errno));
    char why[80];
    int st = lc_wait_child(pid, 2);
    if (!CHECK(st == 0, "fork %d: child %s", i, lc_status_text(st, why, sizeof why))) bad_children++;
  }
  stop = 1;
  lc_watchdog(10, "DEADLOCK", "the pool threads did not stop after the forks");
  pthread_join(t[0], NULL);
  pthread_join(t[1], NULL);
  CHECK(errors == 0, "%ld pool results were NULL or not constructed in the parent", errors);
  return lc_finish();
}
