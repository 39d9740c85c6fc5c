/* pools_region.c: region pools (swm_pool_*). Exits 0 when every check passes. */
#include "pools_common.h"

static int order[8];
static int ran;
static void record(void *data) { order[ran++] = (int)(intptr_t)data; }

int main(void) {
  swm_pool_t *pool = swm_pool_create(4096);
  CHECK(pool != NULL);

  /* small allocations: aligned, distinct, writable */
  char *prev = NULL;
  for (int i = 0; i < 1000; i++) {
    char *p = swm_pool_alloc(pool, (size_t)(i % 100) + 1);
    CHECK(p != NULL);
    CHECK(((uintptr_t)p & 15) == 0);
    CHECK(p != prev);
    memset(p, 0xA5, (size_t)(i % 100) + 1);
    prev = p;
  }

  /* nalloc packs */
  char *a = swm_pool_nalloc(pool, 3);
  char *b = swm_pool_nalloc(pool, 5);
  CHECK(a != NULL && b != NULL);
  CHECK(b == a + 3);

  /* calloc zeroes */
  unsigned char *z = swm_pool_calloc(pool, 200);
  int zero = 1;
  for (int i = 0; i < 200; i++) zero &= z[i] == 0;
  CHECK(zero);

  /* memalign */
  void *m = swm_pool_memalign(pool, 100, 256);
  CHECK(m != NULL && ((uintptr_t)m & 255) == 0);
  void *big_aligned = swm_pool_memalign(pool, 100000, 4096);
  CHECK(big_aligned != NULL && ((uintptr_t)big_aligned & 4095) == 0);
  CHECK(swm_pool_memalign(pool, 10, 24) == NULL);

  /* large allocations and swm_pool_free */
  char *large = swm_pool_alloc(pool, 100000);
  CHECK(large != NULL && ((uintptr_t)large & 15) == 0);
  memset(large, 1, 100000);
  CHECK(swm_pool_free(pool, large) == 0);
  CHECK(swm_pool_free(pool, large) == -1);
  CHECK(swm_pool_free(pool, a) == -1);
  CHECK(swm_pool_free(pool, big_aligned) == 0);

  /* impossible sizes */
  CHECK(swm_pool_alloc(pool, SIZE_MAX) == NULL);
  CHECK(swm_pool_alloc(pool, SIZE_MAX - 8) == NULL);
  CHECK(swm_pool_memalign(pool, SIZE_MAX - 100, 64) == NULL);
  CHECK(swm_pool_create(SIZE_MAX) == NULL);

  /* cleanups run in reverse order on reset, once */
  for (int i = 0; i < 4; i++) CHECK(swm_pool_cleanup_add(pool, record, (void *)(intptr_t)i) == 0);
  swm_pool_reset(pool);
  CHECK(ran == 4);
  CHECK(order[0] == 3 && order[1] == 2 && order[2] == 1 && order[3] == 0);

  /* after reset the first allocation reuses the first block */
  char *again = swm_pool_alloc(pool, 16);
  CHECK(again != NULL);
  swm_pool_reset(pool);
  CHECK(ran == 4);
  CHECK(swm_pool_alloc(pool, 16) == again);

  /* many blocks: requests that fail on full blocks do not slow down */
  for (int i = 0; i < 100000; i++) CHECK(swm_pool_alloc(pool, 1000) != NULL);

  ran = 0;
  CHECK(swm_pool_cleanup_add(pool, record, (void *)(intptr_t)7) == 0);
  swm_pool_destroy(pool);
  CHECK(ran == 1 && order[0] == 7);

  /* tiny block sizes are rounded up to something usable */
  swm_pool_t *tiny = swm_pool_create(1);
  CHECK(tiny != NULL);
  for (int i = 0; i < 100; i++) CHECK(swm_pool_alloc(tiny, 40) != NULL);
  CHECK(swm_pool_alloc(tiny, 5000) != NULL);
  swm_pool_destroy(tiny);

  if (failures) { printf("pools_region: %d failures\n", failures); return 1; }
  printf("pools_region: ok\n");
  return 0;
}
