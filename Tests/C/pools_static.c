/* pools_static.c: static heaps (swm_static_*). Exits 0 when every check passes. */
#include "pools_common.h"

static _Alignas(16) unsigned char buffer[1 << 20];

static void double_free(void) {
  static unsigned char b[4096];
  swm_static_t *h = swm_static_init(b, sizeof b);
  void *p = swm_static_alloc(h, 100);
  swm_static_free(h, p);
  swm_static_free(h, p);
}
static void double_free_merged(void) {
  static unsigned char b[4096];
  swm_static_t *h = swm_static_init(b, sizeof b);
  void *a = swm_static_alloc(h, 100), *m = swm_static_alloc(h, 100), *c = swm_static_alloc(h, 100);
  swm_static_alloc(h, 100);
  swm_static_free(h, a);
  swm_static_free(h, c);
  swm_static_free(h, m);  /* merges with both neighbours */
  swm_static_free(h, m);
}
static void foreign(void) {
  static unsigned char b[4096];
  swm_static_t *h = swm_static_init(b, sizeof b);
  int x;
  swm_static_free(h, &x);
}
static void interior(void) {
  static unsigned char b[4096];
  swm_static_t *h = swm_static_init(b, sizeof b);
  char *p = swm_static_alloc(h, 100);
  swm_static_free(h, p + 32);
}

int main(void) {
  swm_static_stats_t s, whole;
  swm_static_t *heap = swm_static_init(buffer + 3, sizeof buffer - 3);  /* unaligned start is fine */
  CHECK(heap != NULL);
  swm_static_stats(heap, &whole);
  CHECK(whole.used == 0 && whole.free_blocks == 1 && whole.largest_free == whole.free);
  CHECK(whole.free > sizeof buffer - 256);

  /* alignment, usable size, no overlap */
  void *p[64];
  for (int i = 0; i < 64; i++) {
    p[i] = swm_static_alloc(heap, (size_t)i * 7 + 1);
    CHECK(p[i] != NULL && ((uintptr_t)p[i] & 15) == 0);
    CHECK(swm_static_usable_size(heap, p[i]) >= (size_t)i * 7 + 1);
    memset(p[i], i, (size_t)i * 7 + 1);
  }
  for (int i = 0; i < 64; i++) {
    unsigned char *c = p[i];
    int ok = 1;
    for (int j = 0; j < i * 7 + 1; j++) ok &= c[j] == (unsigned char)i;
    CHECK(ok);
  }
  /* free every other block, then the rest: coalescing gives one block back */
  for (int i = 0; i < 64; i += 2) swm_static_free(heap, p[i]);
  swm_static_stats(heap, &s);
  CHECK(s.free_blocks >= 32);
  for (int i = 1; i < 64; i += 2) swm_static_free(heap, p[i]);
  swm_static_stats(heap, &s);
  CHECK(s.free_blocks == 1 && s.free == whole.free && s.used == 0);

  /* a request that does not fit: NULL, heap unchanged */
  void *keep = swm_static_alloc(heap, 1000);
  swm_static_stats(heap, &whole);
  CHECK(swm_static_alloc(heap, sizeof buffer) == NULL);
  CHECK(swm_static_alloc(heap, SIZE_MAX) == NULL);
  swm_static_stats(heap, &s);
  CHECK(s.used == whole.used && s.free == whole.free && s.free_blocks == whole.free_blocks);

  /* realloc: grows in place into a free neighbour, keeps content, moves when needed */
  char *r = swm_static_alloc(heap, 40);
  memcpy(r, "hello, static heap", 19);
  char *r2 = swm_static_realloc(heap, r, 4000);
  CHECK(r2 != NULL && strcmp(r2, "hello, static heap") == 0);
  char *r3 = swm_static_realloc(heap, r2, 20);
  CHECK(r3 == r2 && strcmp(r3, "hello, static heap") == 0);
  CHECK(swm_static_realloc(heap, r3, SIZE_MAX / 2) == NULL);
  CHECK(strcmp(r3, "hello, static heap") == 0);
  CHECK(swm_static_realloc(heap, r3, 0) == NULL);
  swm_static_free(heap, keep);
  swm_static_stats(heap, &s);
  CHECK(s.free_blocks == 1 && s.used == 0);

  /* fragmentation: random alloc/free until full, then free all */
  void *live[4096];
  int count = 0;
  srand(42);
  for (int round = 0; round < 200000; round++) {
    if (count > 0 && (rand() % 3 == 0 || count == 4096)) {
      int k = rand() % count;
      swm_static_free(heap, live[k]);
      live[k] = live[--count];
    } else {
      void *q = swm_static_alloc(heap, (size_t)(rand() % 2000) + 1);
      if (q == NULL) break;  /* full */
      live[count++] = q;
    }
  }
  swm_static_stats(heap, &s);
  CHECK(s.used > 0);
  while (count > 0) swm_static_free(heap, live[--count]);
  swm_static_stats(heap, &s);
  CHECK(s.free_blocks == 1 && s.used == 0 && s.largest_free == s.free);

  /* too-small buffers */
  unsigned char small[32];
  CHECK(swm_static_init(small, sizeof small) == NULL);
  CHECK(swm_static_init(NULL, 100) == NULL);

  /* misuse */
  CHECK(aborts_with(double_free, "swm_static_free(): double free"));
  CHECK(aborts_with(double_free_merged, "swm_static_free(): double free"));
  CHECK(aborts_with(foreign, "swm_static_free(): invalid pointer"));
  CHECK(aborts_with(interior, "swm_static_free()"));

  if (failures) { printf("pools_static: %d failures\n", failures); return 1; }
  printf("pools_static: ok\n");
  return 0;
}
