/*
 * lib_forkearly.c: helper library for fork_early.c. Everything happens in
 * its ELF constructor, before main and (the library being DT_NEEDED) before
 * the constructor of a preloaded or statically linked allocator: it starts
 * two threads that keep allocating, then forks children that allocate and
 * start a thread of their own. Results are left for main to check.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { EARLY_FORKS = 40, BUSY = 2 };
int lc_early_forks, lc_early_bad;
char lc_early_why[256];
static volatile int stop;
static pthread_t busy[BUSY];
static long busy_null;

static void *busy_thread(void *arg) {
  unsigned i = (unsigned)(long)arg;
  void *keep[64] = {0};
  while (!stop) {
    i = i * 1103515245u + 12345u;
    size_t n = (i >> 8) % 8 == 0 ? 150000 : 8 + (i >> 8) % 3000;
    free(keep[i % 64]);
    keep[i % 64] = malloc(n);
    if (!keep[i % 64]) __atomic_fetch_add(&busy_null, 1, __ATOMIC_RELAXED);
  }
  for (int k = 0; k < 64; k++) free(keep[k]);
  return NULL;
}

static void *child_thread(void *arg) {
  for (int i = 0; i < 200; i++) free(malloc(32 + (size_t)i * 40));
  return arg;
}

static void child_work(void) {
  void *a = malloc(40), *b = malloc(20000), *c = malloc(300000);
  pthread_t t;
  int ok = a && b && c && pthread_create(&t, NULL, child_thread, a) == 0;
  void *r = NULL;
  if (ok) ok = pthread_join(t, &r) == 0 && r == a;
  free(a); free(b); free(c);
  _exit(ok ? 0 : 1);
}

/* Wait status, or -1 if the child did not end within 2 s (then killed). */
static int wait_deadline(pid_t pid) {
  for (int ms = 0; ms < 2000; ms++) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) return st;
    usleep(1000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

static void on_alarm(int sig) {
  static const char msg[] = "HANG: fork_early: a fork() in a library constructor never returned\n";
  (void)sig;
  if (write(1, msg, sizeof msg - 1)) _exit(3);
  _exit(3);
}

__attribute__((constructor)) static void early(void) {
  signal(SIGALRM, on_alarm);
  alarm(20);   /* main's watchdog replaces this one */
  for (long i = 0; i < BUSY; i++) pthread_create(&busy[i], NULL, busy_thread, (void *)(i + 1));
  for (int i = 0; i < EARLY_FORKS; i++) {
    pid_t pid = fork();
    if (pid == 0) child_work();
    int st = pid < 0 ? -2 : wait_deadline(pid);
    lc_early_forks++;
    if (st != 0) {
      if (lc_early_bad++ == 0)
        snprintf(lc_early_why, sizeof lc_early_why, "child %d before main: %s", i,
                 st == -1 ? "hung (killed after 2 s)" : st == -2 ? "fork failed"
                 : WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exit status not 0");
      if (lc_early_bad == 2) break;   /* enough evidence; keeps the run short */
    }
  }
}

/* Called by main: stops and joins the busy threads; returns their failures. */
long lc_early_finish(void) {
  stop = 1;
  for (int i = 0; i < BUSY; i++) pthread_join(busy[i], NULL);
  return busy_null;
}
