/* pools_slab.c: slab caches (swm_cache_*). Exits 0 when every check passes. */
#include "pools_common.h"
#include <pthread.h>
#include <stdatomic.h>

struct conn { uint64_t magic; int fd; char buf[100]; };
static atomic_long constructed, destructed;
static void conn_ctor(void *o) { struct conn *c = o; c->magic = 0xC0FFEE; c->fd = -1; atomic_fetch_add(&constructed, 1); }
static void conn_dtor(void *o) { struct conn *c = o; if (c->magic != 0xC0FFEE) abort(); atomic_fetch_add(&destructed, 1); }

static void wrong_cache(void) {
  swm_cache_t *a = swm_cache_create("a", 64, 0, NULL, NULL);
  swm_cache_t *b = swm_cache_create("b", 64, 0, NULL, NULL);
  swm_cache_free(b, swm_cache_alloc(a));
}
static void wrong_cache_sizes(void) {
  swm_cache_t *a = swm_cache_create("small", 32, 0, NULL, NULL);
  swm_cache_t *b = swm_cache_create("huge", 300000, 0, NULL, NULL);
  swm_cache_free(b, swm_cache_alloc(a));
}
static void twice(void) {
  swm_cache_t *a = swm_cache_create("a", 64, 0, NULL, NULL);
  void *o = swm_cache_alloc(a);
  swm_cache_free(a, o);
  swm_cache_free(a, o);
}
static void from_malloc(void) {
  swm_cache_t *a = swm_cache_create("a", 64, 0, NULL, NULL);
  swm_cache_alloc(a);
  swm_cache_free(a, swm_malloc(64));
}

static swm_cache_t *shared;
static void *worker(void *arg) {
  (void)arg;
  void *held[64];
  for (int round = 0; round < 20000; round++) {
    int n = round % 64 + 1;
    for (int i = 0; i < n; i++) {
      struct conn *c = swm_cache_alloc(shared);
      if (c == NULL || c->magic != 0xC0FFEE || c->fd != -1) { printf("FAIL worker: bad object\n"); exit(1); }
      c->fd = 3;
      held[i] = c;
    }
    for (int i = 0; i < n; i++) { ((struct conn *)held[i])->fd = -1; swm_cache_free(shared, held[i]); }
  }
  return NULL;
}

/* objects made on one thread, freed on another */
static swm_cache_t *handoff;
static void *handoff_items[20000];
static void *consumer(void *arg) {
  (void)arg;
  for (int i = 0; i < 20000; i++) swm_cache_free(handoff, handoff_items[i]);
  return NULL;
}

int main(void) {
  swm_cache_t *cache = swm_cache_create("conn", sizeof(struct conn), 0, conn_ctor, conn_dtor);
  CHECK(cache != NULL);
  CHECK(swm_cache_create("bad", 64, 24, NULL, NULL) == NULL);
  CHECK(swm_cache_create("zero", 0, 0, NULL, NULL) == NULL);
  CHECK(swm_cache_create("huge", SIZE_MAX, 0, NULL, NULL) == NULL);

  /* constructor per object at slab creation, not per allocation */
  struct conn *c = swm_cache_alloc(cache);
  CHECK(c != NULL && c->magic == 0xC0FFEE && c->fd == -1);
  CHECK(((uintptr_t)c & 15) == 0);
  long made = atomic_load(&constructed);
  CHECK(made > 1);
  c->fd = 42;
  strcpy(c->buf, "state");
  swm_cache_free(cache, c);
  struct conn *d = swm_cache_alloc(cache);
  CHECK(d == c);                       /* LIFO */
  CHECK(d->fd == 42 && strcmp(d->buf, "state") == 0 && d->magic == 0xC0FFEE); /* state fully kept */
  d->fd = -1;
  CHECK(atomic_load(&constructed) == made);

  /* many objects: distinct, aligned */
  enum { N = 5000 };
  static struct conn *objs[N];
  objs[0] = d;
  for (int i = 1; i < N; i++) {
    objs[i] = swm_cache_alloc(cache);
    CHECK(objs[i] != NULL && objs[i]->magic == 0xC0FFEE);
  }
  for (int i = 1; i < N; i++) CHECK(objs[i] != objs[i - 1]);
  swm_slabinfo(1);
  for (int i = 0; i < N; i++) swm_cache_free(cache, objs[i]);

  /* shrink releases the empty slabs and runs the destructor on each object */
  size_t bytes = swm_cache_shrink(cache);
  CHECK(bytes > 0);
  CHECK(atomic_load(&destructed) == atomic_load(&constructed));

  /* alignment and colouring */
  swm_cache_t *aligned = swm_cache_create("aligned256", 200, 256, NULL, NULL);
  CHECK(aligned != NULL);
  uintptr_t offsets[8];
  int distinct = 0;
  void *firsts[64];
  for (int i = 0; i < 64; i++) {
    firsts[i] = swm_cache_alloc(aligned);
    CHECK(((uintptr_t)firsts[i] & 255) == 0);
  }
  (void)offsets; (void)distinct;
  for (int i = 0; i < 64; i++) swm_cache_free(aligned, firsts[i]);
  CHECK(swm_cache_destroy(aligned) == 0);

  swm_cache_t *small = swm_cache_create("colour", 100, 16, NULL, NULL);  /* 2 colours at 16 KiB slabs */
  /* objects per slab: allocate enough for several slabs and look at the
   * offsets of each slab's lowest object modulo the slab size */
  enum { M = 4000 };
  static void *many[M];
  for (int i = 0; i < M; i++) many[i] = swm_cache_alloc(small);
  uintptr_t seen[16];
  int nseen = 0;
  for (int i = 0; i < M && nseen < 16; i++) {
    uintptr_t off = (uintptr_t)many[i] & 16383 & ~(uintptr_t)0;
    uintptr_t base = (uintptr_t)many[i] & ~(uintptr_t)16383;
    int lowest = 1;
    for (int j = 0; j < M; j++)
      if (((uintptr_t)many[j] & ~(uintptr_t)16383) == base && (uintptr_t)many[j] < (uintptr_t)many[i]) { lowest = 0; break; }
    if (!lowest) continue;
    int dup = 0;
    for (int k = 0; k < nseen; k++) dup |= seen[k] == off;
    if (!dup) seen[nseen++] = off;
  }
  CHECK(nseen >= 2);  /* different slabs start at different colours */
  /* destroy with objects still out: the count comes back */
  CHECK(swm_cache_destroy(small) == M);

  /* threads */
  shared = cache;
  pthread_t t[8];
  for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, worker, NULL);
  for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
  swm_slabinfo(1);
  CHECK(swm_cache_destroy(cache) == 0);
  CHECK(atomic_load(&destructed) == atomic_load(&constructed));

  /* cross-thread frees, page-aligned objects, no name */
  handoff = swm_cache_create(NULL, 4000, 4096, NULL, NULL);
  CHECK(handoff != NULL);
  for (int i = 0; i < 20000; i++) {
    handoff_items[i] = swm_cache_alloc(handoff);
    CHECK(handoff_items[i] != NULL && ((uintptr_t)handoff_items[i] & 4095) == 0);
  }
  pthread_t ct;
  pthread_create(&ct, NULL, consumer, NULL);
  pthread_join(ct, NULL);
  CHECK(swm_cache_shrink(handoff) > 0);
  CHECK(swm_cache_destroy(handoff) == 0);

  /* big objects */
  swm_cache_t *big = swm_cache_create("big", 300000, 0, NULL, NULL);
  void *b1 = swm_cache_alloc(big), *b2 = swm_cache_alloc(big);
  CHECK(b1 && b2 && b1 != b2);
  memset(b1, 1, 300000);
  swm_cache_free(big, b1);
  swm_cache_free(big, b2);
  CHECK(swm_cache_destroy(big) == 0);

  /* misuse */
  CHECK(aborts_with(wrong_cache, "swm_cache_free(): object from another cache"));
  CHECK(aborts_with(wrong_cache_sizes, "swm_cache_free(): object from another cache"));
  CHECK(aborts_with(twice, "swm_cache_free(): double free"));
  CHECK(aborts_with(from_malloc, "swm_cache_free(): object from another cache"));

  if (failures) { printf("pools_slab: %d failures\n", failures); return 1; }
  printf("pools_slab: ok\n");
  return 0;
}
