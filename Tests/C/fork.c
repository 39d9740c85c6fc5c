/*
 * fork.c: fork() while other threads are inside malloc and free.
 *
 * Three busy threads allocate and free (small, medium, large) in a loop; the
 * main thread forks 50 times. Each child allocates and frees blocks of every
 * kind, starts a thread that allocates, reads the statistics (which take
 * every allocator lock) and _exit(0)s. A child that deadlocks is killed by
 * its alarm and counts as a failure; so does one that crashes or finds
 * damaged memory. The parent checks every exit status and that its own
 * threads' blocks were never damaged.
 */
#include "common.h"

#include <pthread.h>

enum { BUSY = 3, FORKS = 50, CHILD_SECONDS = 20 };

static volatile int stop;
static long busy_errors[BUSY], busy_rounds[BUSY];

static void *busy_thread(void *arg) {
  int me = (int)(long)arg;
  uint64_t rng = 777 + (uint64_t)me;
  void *slots[64] = {0};
  size_t sizes[64] = {0};
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    int s = (int)(rng_next(&rng) % 64);
    if (slots[s]) {
      if (verify_fast(slots[s], sizes[s], (uint64_t)(uintptr_t)slots[s]) >= 0) busy_errors[me]++;
      free(slots[s]);
      slots[s] = NULL;
    }
    uint64_t r = rng_next(&rng);
    size_t n = (r % 100) < 85 ? 8 + r % 2000 : (r % 100) < 97 ? 40000 + r % 60000 : (200 << 10) + r % (1 << 20);
    void *p = malloc(V(n));
    if (!p) { busy_errors[me]++; continue; }
    fill_fast(p, n > 256 ? 256 : n, (uint64_t)(uintptr_t)p);
    slots[s] = p;
    sizes[s] = n > 256 ? 256 : n;
    busy_rounds[me]++;
  }
  for (int s = 0; s < 64; s++) {
    if (slots[s] && verify_fast(slots[s], sizes[s], (uint64_t)(uintptr_t)slots[s]) >= 0) busy_errors[me]++;
    free(slots[s]);
  }
  return NULL;
}

static void *child_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 500; i++) {
    void *p = malloc(V(16 + (size_t)i * 50));
    if (!p) return (void *)1;
    memset(p, i, 16 + (size_t)i * 50);
    free(p);
  }
  return NULL;
}

/* Runs in the child: returns the exit code (0 = all good). */
static int child_work(void) {
  alarm(CHILD_SECONDS);
  static const size_t kinds[] = {24, 1000, 64 << 10, 100 << 10, 300 << 10, 1 << 20};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    void *blocks[16];
    int count = kinds[k] >= (64 << 10) ? 3 : 16;
    for (int i = 0; i < count; i++) {
      blocks[i] = malloc(V(kinds[k]));
      if (!blocks[i]) return 10;
      fill_fast(blocks[i], kinds[k], (uint64_t)(uintptr_t)blocks[i]);
    }
    for (int i = 0; i < count; i++) {
      if (verify_fast(blocks[i], kinds[k], (uint64_t)(uintptr_t)blocks[i]) >= 0) return 11;
      free(blocks[i]);
    }
  }
  /* many blocks */
  enum { N = 2000 };
  void **many = calloc(N, sizeof *many);
  if (!many) return 12;
  uint64_t rng = (uint64_t)getpid();
  for (int i = 0; i < N; i++) {
    size_t n = 1 + rng_next(&rng) % 3000;
    many[i] = malloc(V(n));
    if (!many[i]) return 13;
    memset(many[i], 0x11, n);
  }
  for (int i = 0; i < N; i += 2) {
    void *q = realloc(many[i], V(5000));
    if (!q) return 14;
    many[i] = q;
  }
  for (int i = 0; i < N; i++) free(many[i]);
  free(many);
  void *c = calloc(1000, 100);
  if (!c) return 15;
  free(c);
  /* a new thread in the child */
  pthread_t th;
  void *ret = (void *)1;
  if (pthread_create(&th, NULL, child_thread, NULL) != 0) return 16;
  pthread_join(th, &ret);
  if (ret != NULL) return 17;
  /* the statistics take every allocator lock */
  struct mallinfo2 mi = mallinfo2();
  if (mi.arena == 0 && mi.hblkhd == 0) return 18;
  malloc_trim(0);
  return 0;
}

int main(void) {
  t_init("fork");
  alarm(55); /* the parent itself must not hang */
  pthread_t th[BUSY];
  for (long i = 0; i < BUSY; i++) REQUIRE(pthread_create(&th[i], NULL, busy_thread, (void *)i) == 0, "pthread_create");
  int ok = 0, bad = 0;
  for (int f = 0; f < FORKS; f++) {
    /* let the threads get going, at varying points */
    for (volatile int spin = 0; spin < 20000 * (f % 7 + 1); spin++) {}
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork #%d failed: %s", f, strerror(errno));
    if (pid == 0) _exit(child_work());
    int status = 0;
    pid_t w = waitpid(pid, &status, 0);
    char desc[64];
    describe_status(status, desc, sizeof desc);
    int good = w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    CHECK(good, "child %d of %d: %s%s", f, FORKS, desc,
          WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (deadlock: killed by its alarm)" : "");
    if (good) ok++; else bad++;
    /* the parent's allocator still works between forks */
    void *p = malloc(V(100 + (size_t)f));
    REQUIRE(p != NULL, "malloc in the parent");
    free(p);
  }
  stop = 1;
  long rounds = 0, errors = 0;
  for (int i = 0; i < BUSY; i++) {
    pthread_join(th[i], NULL);
    rounds += busy_rounds[i];
    errors += busy_errors[i];
  }
  alarm(0);
  printf("fork: %d children ok, %d failed; busy threads did %ld allocations\n", ok, bad, rounds);
  CHECK(errors == 0, "busy threads saw %ld damaged blocks or failed allocations", errors);
  CHECK(rounds > 1000, "busy threads did only %ld allocations", rounds);
  return t_finish();
}
