/*
 * fork_signal.c: fork() from a signal handler that interrupted malloc/free.
 * Kind: a single-threaded program's fork must not take a lock its own
 * interrupted allocator call holds. glibc reference: BZ #19703,
 * malloc/tst-mallocfork2.c (glibc 2.24+ takes no malloc lock in fork when
 * the process is single-threaded).
 *
 * A profiling timer (SIGPROF, every 200 us of CPU time) interrupts a loop of
 * malloc/free/realloc of small, medium and mmap-sized blocks; the handler
 * forks, the child _exits at once, the handler waits for it.
 * Right answer (glibc): hundreds of forks in 1.5 s, every child exits 0.
 */
#include "lc.h"

#include <sys/time.h>

static volatile sig_atomic_t forks, bad;

static void on_prof(int sig) {
  (void)sig;
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  if (pid < 0) { bad++; errno = saved; return; }
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
  forks++;
  errno = saved;
}

int main(void) {
  lc_what = "fork() in a signal handler that interrupted malloc/free never returned";
  lc_init("fork_signal", 6);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_prof;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGPROF, &sa, NULL);
  struct itimerval it = {{0, 200}, {0, 200}};
  setitimer(ITIMER_PROF, &it, NULL);

  static void *slot[512];
  unsigned seed = 12345;
  long rounds = 0;
  double end = lc_now() + 1.5;
  while (lc_now() < end) {
    for (int i = 0; i < 1000; i++, rounds++) {
      int k = rand_r(&seed) % 512;
      size_t n = rand_r(&seed) % 8 == 0 ? 100000 + rand_r(&seed) % 100000 : 1 + rand_r(&seed) % 4000;
      if (k & 1) { free(slot[k]); slot[k] = malloc(n); }
      else slot[k] = realloc(slot[k], n);
      if (!slot[k]) bad++;
      else ((char *)slot[k])[0] = 1;
    }
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_PROF, &off, NULL);
  alarm(0);
  for (int k = 0; k < 512; k++) free(slot[k]);

  printf("%d forks from the handler during %ld malloc/free/realloc calls\n", (int)forks, rounds);
  CHECK(forks >= 20, "only %d forks: the timer did not interrupt the loop", (int)forks);
  CHECK(bad == 0, "%d failures (a child did not exit 0, fork or malloc failed)", (int)bad);
  return lc_finish();
}
