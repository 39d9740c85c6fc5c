/*
 * Tests/stress/broken.c: a deliberately broken allocator layer, to show that
 * the stress tests notice a broken library. It is never part of the product
 * or of `make test`; build it, then put it in front of the library:
 *
 *   gcc -O2 -fPIC -shared -o /tmp/broken.so Tests/stress/broken.c -ldl
 *   SWM_BROKEN=abort-child:20000 SWM_STRESS_LIB="/tmp/broken.so $PWD/build/libswiftmalloc.so" \
 *     bash Tests/stress/stressng.sh --short
 *   SWM_BROKEN=leak:100 SWM_STRESS_LIB="/tmp/broken.so $PWD/build/libswiftmalloc.so" \
 *     bash Tests/stress/soak.sh 1
 *
 * SWM_BROKEN (read once, at load):
 *   abort-child:N  the first process forked from the one that loaded it
 *                  (e.g. one stress-ng worker) that reaches N mallocs calls
 *                  abort(); every other process works (a flag in a shared
 *                  mapping makes it happen once across all processes)
 *   leak:N         free() forgets every Nth block (leak:1 frees nothing):
 *                  a leak per operation
 * Everything else goes to the next malloc and free (the library's).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);
static int mode; /* 0 none, 1 abort-child, 2 leak */
static long every;
static pid_t first_pid;
static atomic_int *fired; /* shared by every process forked from here */
static _Thread_local long nmalloc;
static atomic_long nfree;
static int resolving;
static char early[4096];
static size_t early_used;

static void resolve(void) {
  resolving = 1;
  next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
  next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
  resolving = 0;
}

__attribute__((constructor)) static void init(void) {
  const char *v = getenv("SWM_BROKEN");
  if (!next_malloc) resolve();
  first_pid = getpid();
  if (!v) return;
  if (strncmp(v, "abort-child:", 12) == 0) { mode = 1; every = atol(v + 12); }
  else if (strncmp(v, "leak:", 5) == 0) { mode = 2; every = atol(v + 5); }
  if (every < 1) every = 1;
  void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  fired = (m == MAP_FAILED) ? NULL : (atomic_int *)m;
}

void *malloc(size_t n) {
  if (!next_malloc) {
    if (resolving) { /* dlsym asked for memory before we know the next malloc */
      size_t at = (early_used + 15) & ~(size_t)15;
      if (at + n > sizeof early) return NULL;
      early_used = at + n;
      return early + at;
    }
    resolve();
  }
  if (mode == 1 && fired && ++nmalloc >= every && getpid() != first_pid &&
      atomic_exchange(fired, 1) == 0)
    abort();
  return next_malloc(n);
}

void free(void *p) {
  if ((char *)p >= early && (char *)p < early + sizeof early) return;
  if (!next_free) resolve();
  if (mode == 2 && p && atomic_fetch_add(&nfree, 1) % every == 0) return; /* forgotten */
  next_free(p);
}
