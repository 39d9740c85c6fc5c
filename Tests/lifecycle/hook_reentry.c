/*
 * hook_reentry.c: never call an interposable function while holding an
 * allocator lock.
 * Kind: a library that interposes mmap/munmap/madvise/mprotect/sbrk/brk and
 * allocates inside (memory profilers, tracers) re-enters malloc from inside
 * the allocator. References: bloomberg/memray#669 and #1007 (deadlock with
 * jemalloc), jemalloc#443; glibc's malloc calls only its internal,
 * non-interposable __mmap/__sbrk.
 *   hook_reentry cold   hooks armed before the allocator's first use
 *   hook_reentry warm   armed after a warm-up
 * Then, armed: small, medium and mmap-sized blocks, realloc growth, aligned
 * blocks, malloc_trim, and 15 rounds of 4 new threads (new thread caches).
 * Right answer (glibc): no deadlock, no crash.
 */
#include "lc.h"

#include <pthread.h>

extern long lc_hook_calls[6];
void lc_hooks_arm(void);

static long failures;

static void *worker(void *arg) {
  unsigned seed = (unsigned)(long)arg;
  for (int i = 0; i < 3000; i++) {
    size_t n = rand_r(&seed) % 16 == 0 ? 140000 + rand_r(&seed) % 300000 : 8 + rand_r(&seed) % 20000;
    char *p = malloc(n);
    if (!p) { __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED); continue; }
    p[0] = p[n - 1] = 1;
    free(p);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int cold = argc > 1 && strcmp(argv[1], "cold") == 0;
  lc_label = "DEADLOCK";
  lc_what = "the allocator re-entered from an mmap/munmap/madvise/mprotect/sbrk hook";
  lc_init(cold ? "hook_reentry cold" : "hook_reentry warm", 12);
  if (!cold) {
    for (int i = 0; i < 50000; i++) free(malloc(16 + i % 40000));
    lc_hooks_arm();
  }
  static void *keep[2000];
  for (int i = 0; i < 2000; i++) keep[i] = malloc(16 + (size_t)i * 37);
  for (int i = 0; i < 60; i++) {
    char *p = malloc((size_t)(i + 1) << 15);
    if (!p) failures++;
    else { memset(p, 1, 4096); free(p); }
  }
  char *r = NULL;
  for (size_t n = 100; n < (8 << 20); n = n * 3 / 2) {
    char *q = realloc(r, n);
    if (!q) { failures++; break; }
    r = q;
    r[n - 1] = 2;
  }
  free(r);
  for (int i = 0; i < 200; i++) {
    void *p = NULL;
    if (posix_memalign(&p, (size_t)4096 << (i % 6), 1000 + (size_t)i * 3000) != 0) failures++;
    free(p);
  }
  for (int i = 0; i < 2000; i++) free(keep[i]);
  malloc_trim(0);
  for (int round = 0; round < 15; round++) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)(round * 4 + i + 1));
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  }
  malloc_trim(0);
  alarm(0);
  printf("hooked calls: mmap %ld, munmap %ld, madvise %ld, mprotect %ld, sbrk %ld, brk %ld\n",
         lc_hook_calls[0], lc_hook_calls[1], lc_hook_calls[2], lc_hook_calls[3], lc_hook_calls[4],
         lc_hook_calls[5]);
  CHECK(failures == 0, "%ld allocations failed", failures);
  return lc_finish();
}
