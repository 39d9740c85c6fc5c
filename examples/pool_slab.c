/* pool_slab.c: a slab cache of constructed connection objects.
 *   cc -o pool_slab examples/pool_slab.c build/libswiftmalloc.a -pthread -I build/include */
#include <stdio.h>
#include <string.h>
#include "swiftmalloc.h"

struct conn { int fd; unsigned generation; char scratch[240]; };

/* Runs once per object when its slab is made, not on every allocation. */
static void conn_init(void *obj) {
  struct conn *c = obj;
  c->fd = -1;
  c->generation = 0;
  memset(c->scratch, 0, sizeof c->scratch);
}

int main(void) {
  swm_cache_t *conns = swm_cache_create("conn", sizeof(struct conn), 64, conn_init, NULL);
  if (conns == NULL) return 1;
  struct conn *open[100];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 100; i++) {
      open[i] = swm_cache_alloc(conns);
      open[i]->fd = i;                  /* state kept across free/alloc */
      open[i]->generation++;
    }
    for (int i = 0; i < 100; i++) { open[i]->fd = -1; swm_cache_free(conns, open[i]); }
  }
  struct conn *c = swm_cache_alloc(conns);
  printf("object reused %u times; fd %d\n", c->generation, c->fd);
  swm_cache_free(conns, c);
  fflush(stdout);   /* swm_slabinfo writes with write(2) */
  swm_slabinfo(1);
  printf("shrink returned %zu bytes\n", swm_cache_shrink(conns));
  return (int)swm_cache_destroy(conns);
}
