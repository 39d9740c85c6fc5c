/*
 * tcache_exit.c: thread exit must return every thread cache.
 * Kind: threads that allocated before the allocator's constructor ran (so
 * before its thread-exit key existed) must give their caches back when they
 * exit, and another library's pthread key must be left alone. glibc
 * reference: tcache_thread_shutdown (malloc/malloc.c) runs for every thread;
 * malloc/tst-malloc-thread-exit.c.
 * lib_tcache.so (DT_NEEDED, constructor before the allocator's) creates its
 * own key first and runs threads that fill their caches:
 *   A  threads that start and end inside that constructor,
 *   B  threads started there that end after main began,
 *   C  threads of main (the allocator fully initialised).
 * Right answer (glibc): mallinfo2().uordblks grows by at most a few KiB per
 * phase of 8 threads (a cache not returned holds tens to hundreds of KiB:
 * this workload fills ~580 KiB per thread); the other
 * library's destructor runs exactly once per thread, with the value stored.
 */
#include "lc.h"

#include <pthread.h>

enum { N = 8, LIMIT = 16 << 10 };
struct token;
extern struct token *lc_stored[];
extern int lc_dtor_calls[], lc_dtor_wrong;
extern size_t lc_in_use_before_a, lc_in_use_after_a, lc_in_use_before_b;
void lc_tcache_work(int idx);
void lc_tcache_phase_b(void);

static void *thread_c(void *arg) { lc_tcache_work((int)(long)arg); return NULL; }

int main(void) {
  /* phase B first: nothing of main has allocated yet */
  lc_name = "tcache_exit";
  lc_watchdog(30, "HANG", "threads did not exit");
  lc_tcache_phase_b();
  size_t after_b = lc_in_use();
  lc_init("tcache_exit", 30);

  size_t before_c = lc_in_use();
  pthread_t t[N];
  for (long i = 0; i < N; i++) pthread_create(&t[i], NULL, thread_c, (void *)(2 * N + i));
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  size_t after_c = lc_in_use();

  long a = (long)(lc_in_use_after_a - lc_in_use_before_a), b = (long)(after_b - lc_in_use_before_b),
       c = (long)(after_c - before_c);
  printf("uordblks growth for %d threads: A (in a constructor) %ld, B (started there, ended in main) %ld, "
         "C (main) %ld bytes\n", N, a, b, c);
  CHECK(a <= LIMIT, "phase A: %ld bytes more in use after %d threads exited (limit %d)", a, N, LIMIT);
  CHECK(b <= LIMIT, "phase B: %ld bytes more in use after %d threads exited (limit %d)", b, N, LIMIT);
  CHECK(c <= LIMIT, "phase C: %ld bytes more in use after %d threads exited (limit %d)", c, N, LIMIT);
  CHECK(lc_dtor_wrong == 0, "the other library's destructor got %d values it never stored", lc_dtor_wrong);
  for (int i = 0; i < 3 * N; i++)
    CHECK(lc_dtor_calls[i] == 1, "thread %d: the other library's destructor ran %d times", i, lc_dtor_calls[i]);
  return lc_finish();
}
