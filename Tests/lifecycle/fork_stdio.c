/*
 * fork_stdio.c: fork() must not deadlock against stdio locks.
 * Kind: lock order between the allocator's fork handlers and libc's own
 * locks. glibc reference: BZ #19431, malloc/tst-malloc-fork-deadlock.c.
 *
 * Two threads fork in a loop, four read a 40,000-byte line with getline()
 * (it reallocs while holding the FILE's lock) and one calls fflush(NULL)
 * (it holds stdio's list lock and waits for each FILE's lock). glibc's fork
 * takes the stdio list lock before its malloc locks, so no cycle exists.
 * An allocator that takes its locks in a pthread_atfork prepare handler (which
 * runs before fork takes the list lock) closes the cycle.
 * Right answer (glibc): every thread stops after 2-4 s, every child exits 0.
 */
#include "lc.h"

#include <pthread.h>
#include <sched.h>

enum { FORKERS = 2, READERS = 4, FLUSHERS = 1, SECONDS = 2, LINE = 40000 };

static char path[] = "/tmp/swm-lc-stdio-XXXXXX";
static volatile int stop;
static int forks, bad_children, read_errors;

static void *forker(void *arg) {
  (void)arg;
  while (!stop) {
    pid_t pid = fork();
    if (pid == 0) {
      void *p = malloc(300);   /* the child's allocator works */
      free(p);
      _exit(p ? 0 : 1);
    }
    if (pid < 0) { __atomic_fetch_add(&bad_children, 1, __ATOMIC_RELAXED); continue; }
    char why[80];
    int st = lc_wait_child(pid, 10);
    if (st != 0) {
      __atomic_fetch_add(&bad_children, 1, __ATOMIC_RELAXED);
      printf("child %d: %s\n", (int)pid, lc_status_text(st, why, sizeof why));
    }
    __atomic_fetch_add(&forks, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

static void *reader(void *arg) {
  FILE *f = arg;
  while (!stop) {
    rewind(f);
    char *line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, f) != LINE + 1) __atomic_fetch_add(&read_errors, 1, __ATOMIC_RELAXED);
    free(line);
  }
  fclose(f);
  return NULL;
}

static void *flusher(void *arg) {
  (void)arg;
  while (!stop) {
    fflush(NULL);
    sched_yield();   /* lets the forkers get the list lock now and then */
  }
  return NULL;
}

int main(void) {
  lc_init("fork_stdio", 30);
  int fd = mkstemp(path);
  REQUIRE(fd >= 0, "mkstemp: %s", strerror(errno));
  FILE *f = fdopen(fd, "w");
  for (int i = 0; i < LINE; i++) fputc('a' + i % 26, f);
  fputc('\n', f);
  fclose(f);

  FILE *in[READERS];
  for (int i = 0; i < READERS; i++) REQUIRE((in[i] = fopen(path, "r")) != NULL, "fopen: %s", strerror(errno));
  unlink(path);

  pthread_t t[FORKERS + READERS + FLUSHERS];
  int n = 0;
  for (int i = 0; i < READERS; i++) pthread_create(&t[n++], NULL, reader, in[i]);
  for (int i = 0; i < FLUSHERS; i++) pthread_create(&t[n++], NULL, flusher, NULL);
  for (int i = 0; i < FORKERS; i++) pthread_create(&t[n++], NULL, forker, NULL);
  /* at least SECONDS, and until 10 forks went through (at most 2 x SECONDS) */
  double start = lc_now();
  while (lc_now() - start < SECONDS || (forks < 10 && lc_now() - start < 2 * SECONDS)) usleep(100000);
  stop = 1;
  lc_watchdog(6, "DEADLOCK", "the forking, getline and fflush(NULL) threads did not stop within 6 s");
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
  alarm(0);

  printf("%d forks in %.1f s\n", forks, lc_now() - start);
  CHECK(forks > 0, "no fork completed");
  CHECK(bad_children == 0, "%d children failed or hung", bad_children);
  CHECK(read_errors == 0, "%d getline results were wrong", read_errors);
  return lc_finish();
}
