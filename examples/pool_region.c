/* pool_region.c: one region pool per request; everything goes at reset.
 *   cc -o pool_region examples/pool_region.c build/libswiftmalloc.a -pthread -I build/include */
#include <stdio.h>
#include <string.h>
#include "swiftmalloc.h"

struct header { const char *name; const char *value; };

static void close_log(void *data) { printf("  cleanup: closing %s\n", (const char *)data); }

int main(void) {
  swm_pool_t *pool = swm_pool_create(16 * 1024);
  if (pool == NULL) return 1;
  for (int request = 0; request < 3; request++) {
    struct header *h = swm_pool_alloc(pool, 8 * sizeof *h);
    char *body = swm_pool_alloc(pool, 64 * 1024);   /* large: its own block */
    char *path = swm_pool_nalloc(pool, 32);          /* packed string */
    snprintf(path, 32, "/item/%d", request);
    h[0].name = "Host";
    h[0].value = "example.org";
    memset(body, 'x', 64 * 1024);
    swm_pool_cleanup_add(pool, close_log, "request log");
    printf("request %d: %s %s=%s\n", request, path, h[0].name, h[0].value);
    swm_pool_reset(pool);   /* cleanups run, large block freed, blocks rewound */
  }
  swm_pool_destroy(pool);
  return 0;
}
