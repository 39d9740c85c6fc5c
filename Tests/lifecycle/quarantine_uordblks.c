/*
 * quarantine_uordblks.c: freed memory is not "in use".
 * Kind: mallinfo2().uordblks must count what the program holds, not blocks
 * the allocator keeps after free(): secure mode's quarantine is free memory
 * (fordblks). glibc reference: mallinfo2 counts free chunks in fordblks
 * (malloc/malloc.c, int_mallinfo).
 *   1. (every mode) 20,000 threads started and ended, 8 at a time, each
 *      allocating and freeing: uordblks grows by at most 16 KiB (quarantined
 *      blocks of libc's thread bookkeeping showed ~110 KiB);
 *   2. (glibc and secure mode, which have no thread caches) 300 blocks of
 *      2000 bytes allocated and freed: uordblks back within 16 KiB.
 * Right answer (glibc): both hold.
 */
#include "lc.h"

#include <pthread.h>

enum { BLOCKS = 300, THREADS = 20000, BATCH = 8, LIMIT = 16 << 10 };

static void *thread_fn(void *arg) {
  void *p = malloc(100), *q = malloc(3000);
  free(p);
  free(q);
  return arg;
}

int main(void) {
  lc_init("quarantine_uordblks", 40);
  size_t t0 = lc_in_use();
  for (int i = 0; i < THREADS; i += BATCH) {
    pthread_t t[BATCH];
    for (int k = 0; k < BATCH; k++) REQUIRE(pthread_create(&t[k], NULL, thread_fn, NULL) == 0, "pthread_create");
    for (int k = 0; k < BATCH; k++) pthread_join(t[k], NULL);
  }
  size_t t1 = lc_in_use();
  printf("threads: uordblks %zu -> %zu after %d threads\n", t0, t1, THREADS);
  CHECK(t1 <= t0 + LIMIT, "%ld bytes more in use after %d threads came and went", (long)(t1 - t0), THREADS);
  if (!lc_ours || lc_secure_expected()) {
    static void *b[BLOCKS];
    size_t u0 = lc_in_use();
    for (int i = 0; i < BLOCKS; i++) { b[i] = malloc(2000); memset(b[i], 1, 2000); }
    size_t u1 = lc_in_use();
    for (int i = 0; i < BLOCKS; i++) free(b[i]);
    size_t u2 = lc_in_use();
    printf("blocks: uordblks %zu -> %zu (allocated) -> %zu (freed)\n", u0, u1, u2);
    CHECK(u1 >= u0 + BLOCKS * 2000, "the live blocks are not counted in use");
    CHECK(u2 <= u0 + LIMIT, "%ld bytes still in use after every block was freed", (long)(u2 - u0));
  }
  return lc_finish();
}
