/*
 * pools_bench.c: the pool family against malloc.
 *   1. a slab cache against malloc/free for one fixed-size object (128 bytes):
 *      bursts of 64 allocations then 64 frees, one thread and two threads;
 *   2. a region pool against malloc/free per request: each request makes 40
 *      allocations of 16..512 bytes, then everything is released (one
 *      swm_pool_reset, or 40 frees).
 * "glibc" is glibc's own malloc (__libc_malloc/__libc_free, exported by
 * glibc), "swm" is swiftmalloc's (swm_malloc/swm_free).
 *
 *   make && cc -O2 -o build/pools_bench bench/pools_bench.c build/libswiftmalloc.a -pthread -I build/include
 *   ./build/pools_bench
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include "swiftmalloc.h"

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

#define OBJ 128
#define BURST 64
#define ROUNDS 200000
#define REQUESTS 200000
#define PER_REQUEST 40

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

enum kind { GLIBC, SWM, CACHE };
static const char *names[] = {"glibc malloc/free", "swm_malloc/swm_free", "swm_cache_alloc/free"};
static swm_cache_t *cache;

static void *burst_loop(void *arg) {
  enum kind k = (enum kind)(intptr_t)arg;
  void *held[BURST];
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < BURST; i++) {
      void *p = k == GLIBC ? __libc_malloc(OBJ) : k == SWM ? swm_malloc(OBJ) : swm_cache_alloc(cache);
      *(volatile char *)p = (char)i;
      held[i] = p;
    }
    for (int i = 0; i < BURST; i++) {
      if (k == GLIBC) __libc_free(held[i]);
      else if (k == SWM) swm_free(held[i]);
      else swm_cache_free(cache, held[i]);
    }
  }
  return NULL;
}

static void bench_fixed(int threads) {
  for (int k = GLIBC; k <= CACHE; k++) {
    burst_loop((void *)(intptr_t)k);  /* warm up */
    double t0 = now_ns();
    pthread_t t[8];
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, burst_loop, (void *)(intptr_t)k);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    double ns = (now_ns() - t0) / ((double)ROUNDS * BURST);  /* per alloc+free pair, per thread */
    printf("  %-24s %d thread%s  %6.2f ns per alloc+free\n", names[k], threads, threads > 1 ? "s" : " ", ns);
  }
}

static size_t sizes[PER_REQUEST];

static void bench_requests(void) {
  srand(7);
  for (int i = 0; i < PER_REQUEST; i++) sizes[i] = 16 + (size_t)(rand() % 497);
  void *held[PER_REQUEST];
  for (int k = GLIBC; k <= SWM; k++) {
    double t0 = now_ns();
    for (int r = 0; r < REQUESTS; r++) {
      for (int i = 0; i < PER_REQUEST; i++) {
        held[i] = k == GLIBC ? __libc_malloc(sizes[i]) : swm_malloc(sizes[i]);
        *(volatile char *)held[i] = 1;
      }
      for (int i = 0; i < PER_REQUEST; i++) {
        if (k == GLIBC) __libc_free(held[i]); else swm_free(held[i]);
      }
    }
    double ns = (now_ns() - t0) / REQUESTS;
    printf("  %-24s %8.1f ns per request (%5.2f ns per allocation)\n", names[k], ns, ns / PER_REQUEST);
  }
  swm_pool_t *pool = swm_pool_create(16384);
  double t0 = now_ns();
  for (int r = 0; r < REQUESTS; r++) {
    for (int i = 0; i < PER_REQUEST; i++) {
      void *p = swm_pool_alloc(pool, sizes[i]);
      *(volatile char *)p = 1;
    }
    swm_pool_reset(pool);
  }
  double ns = (now_ns() - t0) / REQUESTS;
  printf("  %-24s %8.1f ns per request (%5.2f ns per allocation)\n", "swm_pool_alloc + reset", ns, ns / PER_REQUEST);
  swm_pool_destroy(pool);
}

int main(void) {
  cache = swm_cache_create("bench-128", OBJ, 0, NULL, NULL);
  printf("fixed-size objects (%d bytes, bursts of %d):\n", OBJ, BURST);
  bench_fixed(1);
  bench_fixed(2);
  printf("requests (%d allocations of 16..512 bytes, then release all):\n", PER_REQUEST);
  bench_requests();
  swm_cache_destroy(cache);
  return 0;
}
