/* pools_mempool.c: memory reserves (swm_mempool_*). Exits 0 when every check passes. */
#include "pools_common.h"
#include <time.h>
#include <pthread.h>
#include <stdatomic.h>

/* An element allocator that fails on demand. */
static atomic_int fail_now;
static atomic_long live_elements;
static void *flaky_alloc(void *data) {
  if (atomic_load(&fail_now)) return NULL;
  atomic_fetch_add(&live_elements, 1);
  return swm_malloc((size_t)(uintptr_t)data);
}
static void flaky_free(void *e, void *data) {
  (void)data;
  atomic_fetch_sub(&live_elements, 1);
  swm_free(e);
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static swm_mempool_t *pool;
static void *held;
static void *late_free(void *arg) {
  (void)arg;
  usleep(100 * 1000);
  swm_mempool_free(pool, held);
  return NULL;
}

static atomic_int worker_fail;
static void *worker(void *arg) {
  (void)arg;
  for (int i = 0; i < 20000; i++) {
    void *e = swm_mempool_alloc(pool, SWM_MEMPOOL_WAIT);
    if (e == NULL) atomic_store(&worker_fail, 1);
    memset(e, 0x5A, 32);
    swm_mempool_free(pool, e);
  }
  return NULL;
}

int main(void) {
  /* creation fails when the reserve cannot be filled */
  atomic_store(&fail_now, 1);
  CHECK(swm_mempool_create(4, flaky_alloc, flaky_free, (void *)64) == NULL);
  atomic_store(&fail_now, 0);
  CHECK(atomic_load(&live_elements) == 0);
  CHECK(swm_mempool_create(-1, flaky_alloc, flaky_free, (void *)64) == NULL);

  pool = swm_mempool_create(8, flaky_alloc, flaky_free, (void *)64);
  CHECK(pool != NULL);
  CHECK(atomic_load(&live_elements) == 8);

  /* while alloc_fn works the reserve is untouched */
  void *e = swm_mempool_alloc(pool, 0);
  CHECK(e != NULL && atomic_load(&live_elements) == 9);
  swm_mempool_free(pool, e);  /* reserve is full: goes to free_fn */
  CHECK(atomic_load(&live_elements) == 8);

  /* alloc_fn failing: exactly min_nr allocations still succeed */
  atomic_store(&fail_now, 1);
  void *got[8];
  for (int i = 0; i < 8; i++) {
    got[i] = swm_mempool_alloc(pool, 0);
    CHECK(got[i] != NULL);
  }
  CHECK(swm_mempool_alloc(pool, 0) == NULL);

  /* timeout: NULL after about the time asked */
  long t0 = now_ms();
  CHECK(swm_mempool_alloc_timeout(pool, 100) == NULL);
  long waited = now_ms() - t0;
  CHECK(waited >= 90 && waited < 2000);
  CHECK(swm_mempool_alloc_timeout(pool, 0) == NULL);

  /* a waiter wakes when another thread frees */
  held = got[0];
  pthread_t t;
  pthread_create(&t, NULL, late_free, NULL);
  t0 = now_ms();
  void *w = swm_mempool_alloc(pool, SWM_MEMPOOL_WAIT);
  CHECK(w == held);
  CHECK(now_ms() - t0 >= 50);
  pthread_join(t, NULL);
  got[0] = w;

  /* and with a timeout long enough */
  held = got[1];
  pthread_create(&t, NULL, late_free, NULL);
  w = swm_mempool_alloc_timeout(pool, 5000);
  CHECK(w == held);
  pthread_join(t, NULL);
  got[1] = w;

  /* frees refill the reserve */
  for (int i = 0; i < 8; i++) swm_mempool_free(pool, got[i]);
  CHECK(atomic_load(&live_elements) == 8);

  /* resize: grow needs alloc_fn; shrink gives the surplus to free_fn */
  CHECK(swm_mempool_resize(pool, 16) != 0);  /* alloc_fn fails */
  atomic_store(&fail_now, 0);
  CHECK(swm_mempool_resize(pool, 16) == 0);
  CHECK(atomic_load(&live_elements) == 16);
  CHECK(swm_mempool_resize(pool, 4) == 0);
  CHECK(atomic_load(&live_elements) == 4);
  CHECK(swm_mempool_resize(pool, -1) != 0);

  /* threads hammering a pool whose alloc_fn fails: the reserve serves them */
  atomic_store(&fail_now, 1);
  pthread_t ts[6];
  for (int i = 0; i < 6; i++) pthread_create(&ts[i], NULL, worker, NULL);
  for (int i = 0; i < 6; i++) pthread_join(ts[i], NULL);
  CHECK(atomic_load(&worker_fail) == 0);
  atomic_store(&fail_now, 0);
  swm_mempool_destroy(pool);
  CHECK(atomic_load(&live_elements) == 0);

  /* kmalloc- and slab-backed reserves */
  swm_mempool_t *km = swm_mempool_create_kmalloc(4, 256);
  CHECK(km != NULL);
  void *k = swm_mempool_alloc(km, 0);
  CHECK(k != NULL);
  memset(k, 1, 256);
  swm_mempool_free(km, k);
  swm_mempool_destroy(km);

  swm_cache_t *cache = swm_cache_create("mempool-objs", 48, 0, NULL, NULL);
  swm_mempool_t *sp = swm_mempool_create_slab(16, cache);
  CHECK(sp != NULL);
  void *o = swm_mempool_alloc(sp, SWM_MEMPOOL_WAIT);
  CHECK(o != NULL);
  swm_mempool_free(sp, o);
  swm_mempool_destroy(sp);
  CHECK(swm_cache_destroy(cache) == 0);

  if (failures) { printf("pools_mempool: %d failures\n", failures); return 1; }
  printf("pools_mempool: ok\n");
  return 0;
}
