/* pool_static.c: a heap inside a static buffer (no system calls, no malloc).
 *   cc -o pool_static examples/pool_static.c build/libswiftmalloc.a -pthread -I build/include */
#include <stdio.h>
#include <string.h>
#include "swiftmalloc.h"

static _Alignas(16) unsigned char arena[32 * 1024];

static void show(swm_static_t *heap, const char *when) {
  swm_static_stats_t s;
  swm_static_stats(heap, &s);
  printf("%-12s used %6zu  free %6zu  largest %6zu  free blocks %zu\n",
         when, s.used, s.free, s.largest_free, s.free_blocks);
}

int main(void) {
  swm_static_t *heap = swm_static_init(arena, sizeof arena);
  if (heap == NULL) return 1;
  show(heap, "empty");
  char *msg = swm_static_alloc(heap, 64);
  strcpy(msg, "kept across realloc");
  void *a = swm_static_alloc(heap, 1000), *b = swm_static_alloc(heap, 2000);
  msg = swm_static_realloc(heap, msg, 500);
  swm_static_free(heap, a);
  show(heap, "fragmented");
  printf("msg: %s (usable %zu)\n", msg, swm_static_usable_size(heap, msg));
  printf("64 KiB request: %p (does not fit)\n", swm_static_alloc(heap, 64 * 1024));
  swm_static_free(heap, b);
  swm_static_free(heap, msg);
  show(heap, "all freed");
  return 0;
}
