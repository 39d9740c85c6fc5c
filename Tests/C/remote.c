/*
 * remote.c: blocks freed by a thread other than the one that allocated them
 * (remote frees: producer/consumer, thread pools, a fork child freeing what
 * another thread of its parent allocated) are reused and given back to the
 * OS like any others:
 *   - a producer/consumer loop runs in bounded memory, and the producer gets
 *     the blocks the consumer freed back;
 *   - blocks of a thread that has exited can be freed and are reused;
 *   - a fork child that frees blocks of its parent's other threads reuses
 *     them (those threads do not exist in the child);
 *   - blocks freed from the spans of a thread that then sleeps, or that
 *     allocates only other sizes, go back to the OS after the decay time.
 */
#include "common.h"
#include <pthread.h>

enum { ROUND = 20000 };
static void *slots[ROUND];
static pthread_barrier_t turn;

/* Producer/consumer, `rounds` rounds of ROUND 64-byte blocks: the producer
 * allocates and writes them, the consumer frees them. Returns how many of
 * the last round's addresses were also handed out in the round before. */
static void *consumer(void *arg) {
  long rounds = (long)arg;
  for (long r = 0; r < rounds; r++) {
    pthread_barrier_wait(&turn);  /* the producer filled the slots */
    for (int i = 0; i < ROUND; i++) free(slots[i]);
    pthread_barrier_wait(&turn);  /* freed */
  }
  return NULL;
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

static void test_producer_consumer(void) {
  enum { ROUNDS = 300 };
  static void *previous[ROUND];
  pthread_t t;
  pthread_barrier_init(&turn, NULL, 2);
  REQUIRE(pthread_create(&t, NULL, consumer, (void *)(long)ROUNDS) == 0, "pthread_create");
  long after_first = 0;
  size_t reused = 0;
  for (long r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < ROUND; i++) {
      slots[i] = malloc(V(64));
      REQUIRE(slots[i] != NULL, "malloc(64)");
      memset(slots[i], (int)r, 64);
    }
    if (r == ROUNDS - 1) {
      qsort(previous, ROUND, sizeof *previous, cmp_ptr);
      for (int i = 0; i < ROUND; i++)
        if (bsearch(&slots[i], previous, ROUND, sizeof *previous, cmp_ptr)) reused++;
    }
    memcpy(previous, slots, sizeof slots);
    pthread_barrier_wait(&turn);
    pthread_barrier_wait(&turn);
    if (r == 0) after_first = rss_kib();
  }
  pthread_join(t, NULL);
  long growth = rss_kib() - after_first;
  printf("remote: %d rounds of %d blocks freed by another thread: RSS +%ld KiB after the first round, "
         "%zu of the last round's blocks reused from the round before\n", ROUNDS, ROUND, growth, reused);
  /* 300 rounds of 1.25 MiB each: without reuse, 370 MiB */
  CHECK(growth < 8 << 10, "RSS grew by %ld KiB over the rounds", growth);
  if (ours) CHECK(reused >= ROUND * 9 / 10, "only %zu of %d blocks came back to the producer", reused, ROUND);
}

/* A thread allocates, exits; another frees its blocks: they are reused. */
static void *allocate_and_exit(void *arg) {
  (void)arg;
  for (int i = 0; i < ROUND; i++) {
    slots[i] = malloc(V(48));
    memset(slots[i], 1, 48);
  }
  return NULL;
}

static void test_owner_exited(void) {
  long start = rss_kib();
  for (int k = 0; k < 50; k++) {
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, allocate_and_exit, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
    for (int i = 0; i < ROUND; i++) free(slots[i]);
  }
  long growth = rss_kib() - start;
  printf("remote: 50 threads each allocated %d blocks and exited, freed by main: RSS +%ld KiB\n", ROUND, growth);
  /* 50 x 20000 x 48 B = 46 MiB if nothing were reused */
  CHECK(growth < 8 << 10, "RSS grew by %ld KiB", growth);
}

/* A fork child frees what a (live, in the parent) thread allocated, then
 * allocates as much again: it must reuse those blocks. */
static pthread_barrier_t forked;
static void *hold_blocks(void *arg) {
  (void)arg;
  for (int i = 0; i < ROUND; i++) slots[i] = malloc(V(80));
  pthread_barrier_wait(&forked);  /* allocated */
  pthread_barrier_wait(&forked);  /* the parent forked and waited */
  for (int i = 0; i < ROUND; i++) free(slots[i]);
  return NULL;
}

static void test_fork_child(void) {
  pthread_t t;
  pthread_barrier_init(&forked, NULL, 2);
  REQUIRE(pthread_create(&t, NULL, hold_blocks, NULL) == 0, "pthread_create");
  pthread_barrier_wait(&forked);
  fflush(stdout);
  pid_t pid = fork();
  REQUIRE(pid >= 0, "fork");
  if (pid == 0) {
    long start = rss_kib();
    for (int k = 0; k < 20; k++) {
      for (int i = 0; i < ROUND; i++) free(slots[i]);
      for (int i = 0; i < ROUND; i++) {
        slots[i] = malloc(V(80));
        memset(slots[i], 2, 80);
      }
    }
    long growth = rss_kib() - start;
    _exit(growth < 8 << 10 ? 0 : 1);  /* 20 x 1.5 MiB if nothing were reused */
  }
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child did not reuse the blocks it freed (status %d)", st);
  pthread_barrier_wait(&forked);
  pthread_join(t, NULL);
}

/* The producer hands 64 MiB of blocks to the consumer, which frees them all;
 * then the producer either sleeps (`busy` 0) or goes on allocating another
 * size only (`busy` 1), while the main thread keeps calling the allocator.
 * Run in a child with a 200 ms decay time; prints the KiB kept of those
 * added. */
enum { BIG = 400000 };
static void **big; /* an mmap block: unmapped before the measure */
static volatile int stop_producer;
static void *sleepy_producer(void *arg) {
  int busy = (int)(long)arg;
  for (int i = 0; i < BIG; i++) {
    big[i] = malloc(V(96 + (size_t)(i % 4) * 16));
    memset(big[i], 5, 96);
  }
  pthread_barrier_wait(&turn);  /* handed over */
  pthread_barrier_wait(&turn);  /* freed */
  while (!stop_producer) {
    if (busy) {
      void *v[512];
      for (int i = 0; i < 512; i++) v[i] = malloc(V(16));
      for (int i = 0; i < 512; i++) free(v[i]);
    }
    usleep(1000);
  }
  return NULL;
}

static int decay_child(int busy) {
  big = malloc(BIG * sizeof *big);
  if (!big) return 2;
  long start = rss_kib();
  pthread_t t;
  pthread_barrier_init(&turn, NULL, 2);
  if (pthread_create(&t, NULL, sleepy_producer, (void *)(long)busy) != 0) return 2;
  pthread_barrier_wait(&turn);
  long peak = rss_kib();
  for (int i = 0; i < BIG; i++) free(big[i]);
  free(big);
  pthread_barrier_wait(&turn);
  for (int round = 0; round < 15; round++) { /* 1.5 s of activity on this thread */
    usleep(100 * 1000);
    void *v[2000];
    for (int i = 0; i < 2000; i++) v[i] = malloc(V(16 + (size_t)(i * 13) % 1000));
    for (int i = 0; i < 2000; i++) free(v[i]);
  }
  long later = rss_kib();
  stop_producer = 1;
  pthread_join(t, NULL);
  fprintf(stderr, "%ld %ld\n", later - start, peak - start);
  return 0;
}

/* Runs a decay child (`mode`) with a 200 ms decay time: what it kept of
 * the KiB its freed blocks had added must be at most a tenth plus 4 MiB. */
static void check_decay_child(const char *mode, const char *what) {
  char out[64] = "";
  const char *vars[] = {"SWIFTMALLOC_DECAY_MS=200", NULL};
  int st = run_self_env("remote", mode, vars, out, sizeof out, NULL);
  long kept = -1, added = -1;
  sscanf(out, "%ld %ld", &kept, &added);
  printf("remote: %s: %ld KiB of %ld kept after 1.5 s\n", what, kept, added);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && added > 0, "%s: child failed (status %d)", what, st);
  CHECK(kept <= added / 10 + (4 << 10), "%s: %ld KiB of %ld kept", what, kept, added);
}

static void test_remote_frees_decay(void) {
  if (!ours) return;
  check_decay_child("--decay-child-idle", "43 MiB freed by another thread, owner asleep");
  check_decay_child("--decay-child-busy", "43 MiB freed by another thread, owner allocating other sizes");
}

/* Secure mode: spans emptied by another thread's frees are kept with their
 * guard pages (for the next span of their length), not free pages; the
 * decay must give them back too while the program only makes light
 * malloc/free calls (no span freed, no page run). Until session 8 the decay
 * looked at dirty free pages only: 51 MB of 55 stayed (a hostile test). */
enum { KEPT = 60000 };
static void *kept[KEPT];
static void *kept_freer(void *arg) {
  (void)arg;
  for (int i = 0; i < KEPT; i++) free(kept[i]);
  return NULL;
}

static int kept_child(void) {
  long start = rss_kib();
  for (int i = 0; i < KEPT; i++) {
    size_t n = 16 + ((size_t)i * 7919) % ((i & 1) ? 2048 : 1024);
    kept[i] = malloc(V(n));
    if (!kept[i]) return 2;
    memset(kept[i], 3, n);
  }
  long peak = rss_kib();
  pthread_t t;
  if (pthread_create(&t, NULL, kept_freer, NULL) != 0) return 2;
  pthread_join(t, NULL);
  for (int round = 0; round < 150; round++) { /* 1.5 s of light activity */
    for (int i = 0; i < 100; i++) {
      void *volatile p = malloc(V(64 + (size_t)i)); /* volatile: gcc drops free(malloc(n)) */
      free(p);
    }
    usleep(10 * 1000);
  }
  fprintf(stderr, "%ld %ld\n", rss_kib() - start, peak - start);
  return 0;
}

static void test_secure_kept_spans_decay(void) {
  if (!secure) return; /* the default mode keeps no spans; its light traffic stays in the thread cache */
  check_decay_child("--kept-child", "secure mode, blocks freed by another thread into kept spans");
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--decay-child-idle") == 0) return decay_child(0);
  if (argc > 1 && strcmp(argv[1], "--decay-child-busy") == 0) return decay_child(1);
  if (argc > 1 && strcmp(argv[1], "--kept-child") == 0) return kept_child();
  t_init("remote");
  test_producer_consumer();
  test_owner_exited();
  test_fork_child();
  test_remote_frees_decay();
  test_secure_kept_spans_decay();
  return t_finish();
}
