/*
 * lib_tcache.c: helper library for tcache_exit.c. Its ELF constructor runs
 * before the allocator's (DT_NEEDED; the allocator preloaded or linked
 * statically). It creates a pthread key of its own first, then runs threads
 * that allocate (filling their thread caches) and store a token of theirs
 * under that key:
 *   phase A  8 threads start and exit inside the constructor;
 *   phase B  8 threads start inside the constructor and exit when main
 *            calls lc_tcache_phase_b().
 * mallinfo2().uordblks is read before and after each phase.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { N = 8, MAX_THREADS = 64, TOKEN_MAGIC = 0x70ce2 };
struct token { int magic, idx; };

pthread_key_t lc_key;
struct token *lc_stored[MAX_THREADS];
int lc_dtor_calls[MAX_THREADS], lc_dtor_wrong;
size_t lc_in_use_before_a, lc_in_use_after_a, lc_in_use_before_b;
static pthread_t phase_b[N];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go;

static void key_dtor(void *value) {
  struct token *t = value;
  if (t->magic != TOKEN_MAGIC || t->idx < 0 || t->idx >= MAX_THREADS || lc_stored[t->idx] != t) {
    __atomic_fetch_add(&lc_dtor_wrong, 1, __ATOMIC_RELAXED);
    return;
  }
  __atomic_fetch_add(&lc_dtor_calls[t->idx], 1, __ATOMIC_RELAXED);
  free(t);
}

/* Blocks of many sizes, all freed: they fill this thread's cache. Then a
 * token of this thread under lc_key. */
void lc_tcache_work(int idx) {
  static const size_t sizes[] = {16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 4096, 8192, 16384};
  void *p[32];
  for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    for (int i = 0; i < 32; i++) { p[i] = malloc(sizes[s]); if (p[i]) memset(p[i], i, sizes[s]); }
    for (int i = 0; i < 32; i++) free(p[i]);
  }
  struct token *t = malloc(sizeof *t);
  t->magic = TOKEN_MAGIC;
  t->idx = idx;
  lc_stored[idx] = t;
  pthread_setspecific(lc_key, t);
}

static void *idle(void *arg) { return arg; }
static void *thread_a(void *arg) { lc_tcache_work((int)(long)arg); return NULL; }

static void *thread_b(void *arg) {
  lc_tcache_work((int)(long)arg);
  pthread_mutex_lock(&mu);
  while (!go) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < 100; i++) free(malloc(24 + (size_t)i * 8));
  return NULL;
}

__attribute__((constructor)) static void start(void) {
  pthread_key_create(&lc_key, key_dtor);
  pthread_t t[N];
  /* threads that never allocate: libc's stack cache (and the TLS vectors it
   * keeps, which glibc mallocs) is warm before the first measurement */
  for (long i = 0; i < N; i++) pthread_create(&t[i], NULL, idle, NULL);
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  lc_in_use_before_a = mallinfo2().uordblks;
  for (long i = 0; i < N; i++) pthread_create(&t[i], NULL, thread_a, (void *)i);
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  lc_in_use_after_a = lc_in_use_before_b = mallinfo2().uordblks;
  for (long i = 0; i < N; i++) pthread_create(&phase_b[i], NULL, thread_b, (void *)(N + i));
}

/* Lets the phase-B threads finish and joins them. */
void lc_tcache_phase_b(void) {
  pthread_mutex_lock(&mu);
  go = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < N; i++) pthread_join(phase_b[i], NULL);
}
