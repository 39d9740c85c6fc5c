/* pool_mempool.c: a reserve of I/O buffers that a writer can always get.
 *   cc -o pool_mempool examples/pool_mempool.c build/libswiftmalloc.a -pthread -I build/include */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include "swiftmalloc.h"

static swm_mempool_t *buffers;

static void *writer(void *arg) {
  int id = (int)(long)arg;
  for (int i = 0; i < 5; i++) {
    /* never NULL: with SWM_MEMPOOL_WAIT it sleeps until a buffer comes back */
    char *buf = swm_mempool_alloc(buffers, SWM_MEMPOOL_WAIT);
    snprintf(buf, 4096, "writer %d block %d", id, i);
    usleep(1000);
    swm_mempool_free(buffers, buf);
  }
  return NULL;
}

int main(void) {
  buffers = swm_mempool_create_kmalloc(4, 4096);   /* 4 buffers set aside now */
  if (buffers == NULL) return 1;
  pthread_t t[8];
  for (long i = 0; i < 8; i++) pthread_create(&t[i], NULL, writer, (void *)i);
  for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
  void *b = swm_mempool_alloc_timeout(buffers, 10);
  printf("writers done; a buffer is %s\n", b ? "available" : "not available");
  if (b) swm_mempool_free(buffers, b);
  swm_mempool_resize(buffers, 16);
  swm_mempool_destroy(buffers);
  return 0;
}
