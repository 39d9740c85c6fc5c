/*
 * fork_early.c: fork before the allocator's constructor has run.
 * Kind: fork handling must not depend on the allocator's constructor having
 * run (cf. glibc, whose malloc needs no initialisation for fork).
 * lib_forkearly.so is DT_NEEDED, so its constructor runs before the
 * allocator's when the allocator is preloaded or linked statically: it starts
 * threads that allocate and forks 40 children that allocate and start a
 * thread, all before main. main then checks the results, forks again, and
 * stops the threads.
 * Right answer (glibc): every child, before and after main, exits 0.
 */
#include "lc.h"

extern int lc_early_forks, lc_early_bad;
extern char lc_early_why[];
long lc_early_finish(void);

int main(void) {
  lc_init("fork_early", 30);
  printf("before main: %d forks, %d bad\n", lc_early_forks, lc_early_bad);
  CHECK(lc_early_forks == 40 || lc_early_bad > 0, "the library constructor forked %d times, not 40", lc_early_forks);
  CHECK(lc_early_bad == 0, "%d of the children forked before main failed; first: %s", lc_early_bad,
        lc_early_why);
  for (int i = 0; i < 5; i++) {   /* threads from before main are still allocating */
    pid_t pid = fork();
    if (pid == 0) { void *p = malloc(5000); _exit(p ? 0 : 1); }
    char why[80];
    int st = lc_wait_child(pid, 5);
    CHECK(st == 0, "child %d forked in main: %s", i, lc_status_text(st, why, sizeof why));
  }
  long null = lc_early_finish();
  CHECK(null == 0, "the threads started before main got %ld NULL results", null);
  return lc_finish();
}
