/*
 * dlclose.c: the library dlopened by a program that keeps glibc's malloc,
 * used from a second thread, then dlclosed.
 * Kind: nothing the library registered with libc (a pthread key destructor,
 * fork handlers) may run code of an unloaded library; a thread's cache of a
 * library that is gone must not be touched. glibc reference: dlclose runs
 * the library's destructors and drops its atfork handlers
 * (posix/register-atfork.c, __unregister_atfork); key destructors stay.
 *   dlclose live    dlclose while the thread that used it still lives, then
 *                   the thread exits
 *   dlclose after   the thread exits first, then dlclose
 *   dlclose repeat  dlopen / use / dlclose 20 times, both orders
 * After each dlclose the program forks and allocates.
 * SWM_TEST_DLOPEN names the library (run.sh: libswiftmalloc.so in mode
 * preload, libswiftmalloc-secure.so in mode secure).
 * Right answer: no crash, no hang; the program's own malloc stays glibc's.
 */
#include "lc.h"

#include <pthread.h>

struct api {
  void *(*malloc)(size_t);
  void (*free)(void *);
  size_t (*usable)(void *);
  swm_cache_t *(*cache_create)(const char *, size_t, size_t, void (*)(void *), void (*)(void *));
  void *(*cache_alloc)(swm_cache_t *);
  void (*cache_free)(swm_cache_t *, void *);
  size_t (*cache_destroy)(swm_cache_t *);
  swm_mempool_t *(*mempool_create)(int, size_t);
  void *(*mempool_alloc)(swm_mempool_t *, int);
  void (*mempool_free)(swm_mempool_t *, void *);
  void (*mempool_destroy)(swm_mempool_t *);
};

static struct api api;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int used, may_exit;
static long errors;

static void *load(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  REQUIRE(h != NULL, "dlopen(%s): %s", path, dlerror());
  void **slot = (void **)&api;
  static const char *names[] = {"swm_malloc", "swm_free", "swm_usable_size", "swm_cache_create",
                                "swm_cache_alloc", "swm_cache_free", "swm_cache_destroy",
                                "swm_mempool_create_kmalloc", "swm_mempool_alloc", "swm_mempool_free",
                                "swm_mempool_destroy"};
  for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
    REQUIRE((slot[i] = dlsym(h, names[i])) != NULL, "dlsym(%s) failed", names[i]);
  return h;
}

static void *user_thread(void *arg) {
  (void)arg;
  for (size_t n = 8; n <= (512 << 10); n *= 2) {   /* small, medium and mmap-sized */
    char *p[8];
    for (int i = 0; i < 8; i++) {
      p[i] = api.malloc(n + (size_t)i);
      if (!p[i] || api.usable(p[i]) < n + (size_t)i) { errors++; continue; }
      memset(p[i], i, n + (size_t)i);
    }
    for (int i = 0; i < 8; i++) api.free(p[i]);
  }
  swm_cache_t *c = api.cache_create("lc-dlclose", 96, 16, NULL, NULL);
  swm_mempool_t *m = api.mempool_create(4, 300);
  if (!c || !m) errors++;
  else {
    void *o[10], *e[10];
    for (int i = 0; i < 10; i++) { o[i] = api.cache_alloc(c); e[i] = api.mempool_alloc(m, 0); }
    for (int i = 0; i < 10; i++) { api.cache_free(c, o[i]); api.mempool_free(m, e[i]); }
    if (api.cache_destroy(c) != 0) errors++;
    api.mempool_destroy(m);
  }
  pthread_mutex_lock(&mu);
  used = 1;
  pthread_cond_broadcast(&cv);
  while (!may_exit) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  return NULL;   /* the thread exits: its key destructors run */
}

static void fork_and_allocate(void) {
  pid_t pid = fork();
  if (pid == 0) { void *p = malloc(100); _exit(p ? 0 : 1); }
  char why[80];
  int st = lc_wait_child(pid, 5);
  CHECK(st == 0, "fork after dlclose: child %s", lc_status_text(st, why, sizeof why));
  free(malloc(1000));
}

/* One round: close_while_alive chooses the order of dlclose and thread exit. */
static void round_trip(const char *path, int close_while_alive, int verbose) {
  void *h = load(path);
  used = may_exit = 0;
  pthread_t t;
  pthread_create(&t, NULL, user_thread, NULL);
  pthread_mutex_lock(&mu);
  while (!used) pthread_cond_wait(&cv, &mu);
  if (verbose) printf("the second thread used the library\n");
  if (close_while_alive) {
    pthread_mutex_unlock(&mu);
    REQUIRE(dlclose(h) == 0, "dlclose: %s", dlerror());
    if (verbose) printf("dlclosed while the thread lives; the thread exits now\n");
    pthread_mutex_lock(&mu);
  }
  may_exit = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  pthread_join(t, NULL);
  if (verbose) printf("the thread exited\n");
  if (!close_while_alive) REQUIRE(dlclose(h) == 0, "dlclose: %s", dlerror());
  if (verbose && !close_while_alive) printf("dlclosed\n");
  fork_and_allocate();
  if (verbose) printf("forked and allocated after dlclose\n");
}

int main(int argc, char **argv) {
  const char *how = argc > 1 ? argv[1] : "live";
  static char name[64];
  snprintf(name, sizeof name, "dlclose %s", how);
  lc_init(name, 30);
  const char *path = getenv("SWM_TEST_DLOPEN");
  REQUIRE(path != NULL, "SWM_TEST_DLOPEN (the library to dlopen) is not set");
  if (strcmp(how, "live") == 0) round_trip(path, 1, 1);
  else if (strcmp(how, "after") == 0) round_trip(path, 0, 1);
  else for (int i = 0; i < 20; i++) { printf("round %d\n", i); round_trip(path, i & 1, 0); }
  CHECK(errors == 0, "%ld allocations through the dlopened library failed", errors);
  return lc_finish();
}
