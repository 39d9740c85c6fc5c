/*
 * stats_cancel.c: malloc_stats() is not a cancellation point.
 * Kind: a thread with a cancellation request pending (deferred) calls
 * malloc_stats(): the whole report is printed, and cancellation acts at the
 * next real cancellation point. glibc reference: BZ #22830,
 * malloc/tst-malloc-stats-cancellation.c (glibc writes with
 * _IO_FLAGS2_NOTCANCEL set on stderr).
 * The report must start with glibc's own lines (Arena 0:, system bytes,
 * in use bytes, Total (incl. mmap):, max mmap regions, max mmap bytes);
 * swiftmalloc's own table follows, from the line "swiftmalloc statistics".
 * Right answer (glibc): the report is complete (as many lines as an
 * uncancelled one), the fputs after it does not print, the thread ends
 * cancelled.
 */
#include "lc.h"

#include <pthread.h>

static char got[16384], reference[16384];
static int pipe_in;
static pthread_barrier_t gate;

static void *collector(void *arg) {   /* reads fd 2's pipe until EOF */
  (void)arg;
  size_t n = 0;
  ssize_t r;
  while (n < sizeof got - 1 && (r = read(pipe_in, got + n, sizeof got - 1 - n)) > 0) n += (size_t)r;
  got[n] = 0;
  return NULL;
}

static void *victim(void *arg) {
  (void)arg;
  pthread_barrier_wait(&gate);   /* not a cancellation point; the request is pending */
  malloc_stats();
  fputs("PRINTED AFTER malloc_stats: cancellation did not act\n", stderr);
  return NULL;
}

static int lines(const char *s) { int n = 0; for (; *s; s++) n += *s == '\n'; return n; }

int main(void) {
  lc_init("stats_cancel", 20);
  int saved = dup(2);
  int fds[2];
  REQUIRE(pipe(fds) == 0, "pipe");
  pipe_in = fds[0];
  dup2(fds[1], 2);
  close(fds[1]);
  pthread_t c, v;
  pthread_create(&c, NULL, collector, NULL);
  pthread_barrier_init(&gate, NULL, 2);
  pthread_create(&v, NULL, victim, NULL);
  pthread_cancel(v);
  pthread_barrier_wait(&gate);
  void *rv;
  pthread_join(v, &rv);
  dup2(saved, 2);            /* closes the pipe's last write end: EOF */
  pthread_join(c, NULL);
  FILE *tmp = tmpfile();     /* the reference: malloc_stats without cancellation */
  dup2(fileno(tmp), 2);
  malloc_stats();
  dup2(saved, 2);
  rewind(tmp);
  reference[fread(reference, 1, sizeof reference - 1, tmp)] = 0;
  fclose(tmp);

  printf("--- report of the thread with a pending cancel:\n%s---\n", got);
  CHECK(rv == PTHREAD_CANCELED, "the thread was not cancelled after malloc_stats");
  CHECK(strstr(got, "PRINTED AFTER") == NULL, "fputs after malloc_stats printed: cancellation stays off");
  CHECK(lines(got) == lines(reference), "the report has %d lines, an uncancelled one %d", lines(got),
        lines(reference));
  CHECK(strncmp(got, "Arena 0:\n", 9) == 0, "the report does not start with glibc's \"Arena 0:\" line");
  static const char *order[] = {"Arena 0:\n", "\nsystem bytes", "\nin use bytes", "\nTotal (incl. mmap):\n",
                                "\nsystem bytes", "\nin use bytes", "\nmax mmap regions", "\nmax mmap bytes",
                                "\nswiftmalloc statistics\n", "thread caches"};
  const char *at = got;
  for (unsigned i = 0; i < sizeof order / sizeof order[0]; i++) {
    if (i >= 8 && !lc_ours) break;   /* glibc prints only its own lines */
    const char *f = strstr(at, order[i]);
    if (!CHECK(f != NULL, "\"%s\" missing or out of order", order[i] + (order[i][0] == '\n'))) break;
    at = f + 1;
  }
  return lc_finish();
}
